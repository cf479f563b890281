// TEST STUB, not nlohmann/json: a small header written for tests/test_custom_ops.py so that the
// ONNX plugins (custom_ops/framework/onnx_plugin/npuq_onnx_attrs.h) compile and run on machines
// without nlohmann-json3-dev. It has only the part of nlohmann::json's API the plugins use, with
// the same meaning:
//   json::parse(text, nullptr, allow_exceptions)  (discarded value on bad input when !allow_exceptions)
//   is_discarded / is_null / is_boolean / is_number / is_number_integer / is_number_float /
//   is_string / is_array / is_object, find(key) / begin() / end(), range-for, get<T>().
// tests/test_custom_ops.py::test_json_stub checks it against Python's json module. Differences
// from nlohmann that GE's attribute JSON (int64 "i", ASCII text, depth 3) cannot reach:
// iterators are plain pointers (no .key() / .value()), integers above INT64_MAX become floats
// (nlohmann keeps them as unsigned up to UINT64_MAX), raw bytes >= 0x80 in strings are not
// checked to be UTF-8, and nesting deeper than MAX_DEPTH is refused (nlohmann has no limit).
#ifndef NPUQ_TEST_STUB_NLOHMANN_JSON_HPP
#define NPUQ_TEST_STUB_NLOHMANN_JSON_HPP

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace nlohmann {

class json {
public:
    // Iterators are pointers into items_: find() can then return end() for "absent", and
    // range-for needs nothing more. Read-only: the plugins only read what they parse.
    using const_iterator = const json *;

    json() = default;  // null, as nlohmann's default

    // Takes a const char * too (converted). The second parameter is nlohmann's parser callback,
    // which the plugins leave null.
    [[nodiscard]] static json parse(const std::string &text, std::nullptr_t = nullptr, bool allow_exceptions = true)
    {
        Parser p{text.data(), text.data() + text.size()};
        json v;
        const bool ok = p.Value(v, 0);
        p.SkipWs();
        if (ok && p.pos == p.end) {  // anything after the value is an error
            return v;
        }
        if (allow_exceptions) {
            throw std::invalid_argument("json::parse: syntax error at byte " + std::to_string(p.pos - text.data()));
        }
        json bad;
        bad.kind_ = Kind::Discarded;
        return bad;
    }

    bool is_discarded() const { return kind_ == Kind::Discarded; }
    bool is_null() const { return kind_ == Kind::Null; }
    bool is_boolean() const { return kind_ == Kind::Boolean; }
    bool is_number() const { return is_number_integer() || is_number_float(); }
    bool is_number_integer() const { return kind_ == Kind::Integer; }
    bool is_number_float() const { return kind_ == Kind::Float; }
    bool is_string() const { return kind_ == Kind::String; }
    bool is_array() const { return kind_ == Kind::Array; }
    bool is_object() const { return kind_ == Kind::Object; }

    // nlohmann iterates an array's elements, an object's values (in key order), a null (or
    // discarded) value as empty and any other value as itself, once: so does this.
    const_iterator begin() const { return is_array() || is_object() ? items_.data() : this; }
    const_iterator end() const
    {
        if (is_array() || is_object()) {
            return items_.data() + items_.size();
        }
        return is_null() || is_discarded() ? this : this + 1;
    }

    // The value of `key`, or end() when this is no object or has no such key (as nlohmann).
    const_iterator find(const std::string &key) const
    {
        if (!is_object()) {
            return end();
        }
        const auto k = std::lower_bound(keys_.begin(), keys_.end(), key);
        return k != keys_.end() && *k == key ? begin() + (k - keys_.begin()) : end();
    }

    // As nlohmann: a number or a bool converts to any arithmetic type (static_cast), but only a
    // bool gives a bool and only a string a std::string; anything else throws (type_error there).
    template <typename T>
    T get() const
    {
        if constexpr (std::is_same_v<T, std::string>) {
            Need(is_string(), "a string");
            return str_;
        } else if constexpr (std::is_same_v<T, bool>) {
            Need(is_boolean(), "a boolean");
            return bool_;
        } else {
            static_assert(std::is_arithmetic_v<T>, "json::get<T>: this stub has std::string, bool and numbers");
            Need(is_number() || is_boolean(), "a number");
            return is_number_integer() ? static_cast<T>(int_)
                   : is_number_float() ? static_cast<T>(float_) : static_cast<T>(bool_);
        }
    }

private:
    enum class Kind { Null, Boolean, Integer, Float, String, Array, Object, Discarded };
    static constexpr int MAX_DEPTH = 512;  // refuses input that would overflow the stack

    static void Need(bool ok, const char *what)
    {
        if (!ok) {
            throw std::logic_error(std::string("json::get: the value is not ") + what);
        }
    }

    // Objects keep keys_ sorted, items_[i] the value of keys_[i]: nlohmann::json's std::map
    // order, and a repeated key keeps its last value, as there.
    void Put(std::string key, json value)
    {
        const auto k = std::lower_bound(keys_.begin(), keys_.end(), key);
        const auto i = k - keys_.begin();
        if (k != keys_.end() && *k == key) {
            items_[static_cast<std::size_t>(i)] = std::move(value);
        } else {
            keys_.insert(k, std::move(key));
            items_.insert(items_.begin() + i, std::move(value));
        }
    }

    // Recursive descent over RFC 8259; each function returns false on a syntax error, with pos
    // where it was found.
    struct Parser {
        const char *pos;
        const char *end;

        void SkipWs()
        {
            while (pos != end && (*pos == ' ' || *pos == '\t' || *pos == '\n' || *pos == '\r')) {
                ++pos;
            }
        }
        bool Skip(char c)  // the next byte, if it is c
        {
            if (pos == end || *pos != c) {
                return false;
            }
            ++pos;
            return true;
        }
        bool Eat(char c)  // the next token, if it is c
        {
            SkipWs();
            return Skip(c);
        }
        bool Word(const char *w)  // true / false / null
        {
            const std::size_t n = std::strlen(w);
            if (static_cast<std::size_t>(end - pos) < n || std::strncmp(pos, w, n) != 0) {
                return false;
            }
            pos += n;
            return true;
        }

        bool Value(json &v, int depth)
        {
            SkipWs();
            if (pos == end || depth > MAX_DEPTH) {
                return false;
            }
            switch (*pos) {
                case '{': return Object(v, depth);
                case '[': return Array(v, depth);
                case '"': ++pos; v.kind_ = Kind::String; return String(v.str_);
                case 't': v.kind_ = Kind::Boolean; v.bool_ = true; return Word("true");
                case 'f': v.kind_ = Kind::Boolean; v.bool_ = false; return Word("false");
                case 'n': v.kind_ = Kind::Null; return Word("null");
                default: return Number(v);
            }
        }

        bool Array(json &v, int depth)
        {
            ++pos;  // '['
            v.kind_ = Kind::Array;
            if (Eat(']')) {
                return true;
            }
            do {
                v.items_.emplace_back();
                if (!Value(v.items_.back(), depth + 1)) {
                    return false;
                }
            } while (Eat(','));
            return Eat(']');
        }

        bool Object(json &v, int depth)
        {
            ++pos;  // '{'
            v.kind_ = Kind::Object;
            if (Eat('}')) {
                return true;
            }
            do {
                std::string key;
                json value;
                if (!Eat('"') || !String(key) || !Eat(':') || !Value(value, depth + 1)) {
                    return false;
                }
                v.Put(std::move(key), std::move(value));
            } while (Eat(','));
            return Eat('}');
        }

        bool Hex4(uint32_t &cp)
        {
            if (end - pos < 4) {
                return false;
            }
            const auto r = std::from_chars(pos, pos + 4, cp, 16);  // from_chars takes no sign: 4 hex digits
            if (r.ec != std::errc() || r.ptr != pos + 4) {
                return false;
            }
            pos += 4;
            return true;
        }

        // UTF-8: below 0x80 one byte; else a lead byte 110xxxxx / 1110xxxx / 11110xxx (by how
        // many follow) with the top bits, then 10xxxxxx bytes of 6 bits each.
        static void Utf8(uint32_t cp, std::string &out)
        {
            const int more = cp < 0x80 ? 0 : cp < 0x800 ? 1 : cp < 0x10000 ? 2 : 3;
            static const uint32_t LEAD[] = {0x00, 0xC0, 0xE0, 0xF0};
            out += static_cast<char>(LEAD[more] | (cp >> (6 * more)));
            for (int shift = 6 * (more - 1); shift >= 0; shift -= 6) {
                out += static_cast<char>(0x80 | ((cp >> shift) & 0x3F));
            }
        }

        // \uXXXX: a UTF-16 unit; a high surrogate must be followed by \u and a low one, which
        // together are one code point. A lone surrogate is an error (as nlohmann).
        bool Unicode(std::string &out)
        {
            uint32_t cp = 0;
            if (!Hex4(cp) || (cp >= 0xDC00 && cp <= 0xDFFF)) {
                return false;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (end - pos < 2 || pos[0] != '\\' || pos[1] != 'u') {
                    return false;
                }
                pos += 2;
                uint32_t low = 0;
                if (!Hex4(low) || low < 0xDC00 || low > 0xDFFF) {
                    return false;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            }
            Utf8(cp, out);
            return true;
        }

        bool String(std::string &out)  // after the opening '"'
        {
            while (pos != end) {
                const char c = *pos++;
                if (c == '"') {
                    return true;
                }
                if (static_cast<unsigned char>(c) < 0x20) {
                    return false;  // control characters must be escaped
                }
                if (c != '\\') {
                    out += c;
                    continue;
                }
                if (pos == end) {
                    return false;
                }
                switch (*pos++) {
                    case '"': out += '"'; break;
                    case '\\': out += '\\'; break;
                    case '/': out += '/'; break;
                    case 'b': out += '\b'; break;
                    case 'f': out += '\f'; break;
                    case 'n': out += '\n'; break;
                    case 'r': out += '\r'; break;
                    case 't': out += '\t'; break;
                    case 'u':
                        if (!Unicode(out)) {
                            return false;
                        }
                        break;
                    default: return false;
                }
            }
            return false;  // unterminated
        }

        bool Digits()  // one or more
        {
            const char *start = pos;
            while (pos != end && *pos >= '0' && *pos <= '9') {
                ++pos;
            }
            return pos != start;
        }

        // -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? ; integer when it has neither fraction
        // nor exponent and fits int64_t, else double.
        bool Number(json &v)
        {
            const char *start = pos;
            Skip('-');
            if (!Skip('0') && !Digits()) {  // no leading zeros: "01" is 0 and trailing garbage
                return false;
            }
            const bool fraction = Skip('.');
            if (fraction && !Digits()) {
                return false;
            }
            const bool exponent = Skip('e') || Skip('E');
            if (exponent && !Skip('+')) {
                Skip('-');
            }
            if (exponent && !Digits()) {
                return false;
            }
            if (!fraction && !exponent && std::from_chars(start, pos, v.int_).ec == std::errc()) {
                v.kind_ = Kind::Integer;
                return true;
            }
            // strtod needs a terminated string; it reads '.' as the decimal point in the "C"
            // locale, which is what the test programs run in. Past DBL_MAX is an error (as nlohmann).
            v.kind_ = Kind::Float;
            v.float_ = std::strtod(std::string(start, pos).c_str(), nullptr);
            return std::isfinite(v.float_);
        }
    };

    Kind kind_ = Kind::Null;
    bool bool_ = false;
    int64_t int_ = 0;
    double float_ = 0.0;
    std::string str_;
    std::vector<std::string> keys_;  // objects only, sorted
    std::vector<json> items_;        // array elements, or object values (items_[i] is keys_[i]'s)
};

}  // namespace nlohmann

#endif  // NPUQ_TEST_STUB_NLOHMANN_JSON_HPP
