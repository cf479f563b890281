// The QuantDequant driver shared by every format family: per-core rows, tiles, the UB layout of
// blocks, double-buffered copies, the float32 conversions and the cross-core tensor amax.
//
// UB layout of a tile: its rows one after another, each row a run of blocks of `stride`
// elements (the block length rounded up to a 32-byte multiple of the input dtype, so every
// block starts on a 32-byte boundary), zeros past the data. When the block length is already
// such a multiple (MX, NVF4, HiF4, most groups) a row is contiguous in UB and a tile is one
// DMA; otherwise every block is its own DMA block. A family's Run(s, x, y, nb, stride) then
// sees nb blocks of `stride` float32 elements in x and writes y.
//
// One pass over memory, except: NVFP4 and HiF8 scale="tensor" first read the core's rows for the
// tensor amax (it needs all cores' maxima, exchanged through the workspace around SyncAll); a
// per-channel block (int8sym etc., HiF8 scale="row") longer than a tile is read once for its
// amax and once to quantize.
//
// kEncode (npuq::Quantize): the same tiles and passes, but the family's Encode writes each
// tile's element codes and block scale bytes (formats.encode's layout) instead of y; the plan
// (PlanQuantize) gives a block that is not a whole number of 32-byte blocks of the dtype a
// stride of whole 32-byte blocks of codes, so every block's codes are one aligned DMA block.
#pragma once

#include "npuq/encode.h"

namespace npuq {

template <typename A, typename B>
struct IsSame {
    static constexpr bool value = false;
};
template <typename A>
struct IsSame<A, A> {
    static constexpr bool value = true;
};

template <typename T, class Family, bool kEncode = false>
class BlockKernel {
 public:
    // QuantDequant: y. Quantize (kEncode): codes and scales, formats.Packed's rows.
    __aicore__ inline void Init(GM_ADDR x, GM_ADDR y, GM_ADDR workspace, const QuantDequantParams& p,
                                GM_ADDR scales = nullptr) {
        p_ = p;
        g_ = kEncode ? PlanQuantize(p, sizeof(T)) : PlanQuantDequant(p, sizeof(T));
        const uint64_t perCore = p.rowsPerCore == 0 ? p.rows : p.rowsPerCore;
        const uint64_t first = perCore * static_cast<uint64_t>(AscendC::GetBlockIdx());
        row0_ = static_cast<uint32_t>(first < p.rows ? first : p.rows);
        row1_ = static_cast<uint32_t>(first + perCore < p.rows ? first + perCore : p.rows);
        const uint64_t elems = static_cast<uint64_t>(p.rows) * p.cols;
        xGm_.SetGlobalBuffer(reinterpret_cast<__gm__ T*>(x), elems);
        if constexpr (kEncode) {
            codeBits_ = QuantCodeBits(p.format);
            blockCodeBytes_ = codeBits_ == 4 ? (g_.block + g_.block % 2) / 2 : g_.block;
            blockScaleBytes_ = QuantScaleBytes(p);
            codesGm_.SetGlobalBuffer(reinterpret_cast<__gm__ uint8_t*>(y),
                                     static_cast<uint64_t>(p.rows) * g_.blocksPerRow * blockCodeBytes_);
            scalesGm_.SetGlobalBuffer(reinterpret_cast<__gm__ uint8_t*>(scales),
                                      static_cast<uint64_t>(p.rows) * g_.blocksPerRow * blockScaleBytes_);
        } else {
            yGm_.SetGlobalBuffer(reinterpret_cast<__gm__ T*>(y), elems);
        }
        if (workspace != nullptr)
            wsGm_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(workspace), (kEncode ? 16ull : 8ull) * AscendC::GetBlockNum());

        constexpr uint32_t kTile = kQdTileElems;
        constexpr uint32_t kSlack = 512;  // Brcb writes whole groups of 8 blocks
        pipe_.InitBuffer(inQ_, 2, kTile * sizeof(T));
        if constexpr (kEncode) {
            pipe_.InitBuffer(outQ_, 2, kTile);                       // codes: at most a byte each
            pipe_.InitBuffer(scaleQ_, 2, kBlockCap * sizeof(float));  // at most a float32 per block
            pipe_.InitBuffer(lutBuf_, enc::kLutEntries * sizeof(half));
            pipe_.InitBuffer(encConstBuf_, enc::kConstRepeats * kRepeatFloats * sizeof(uint32_t));
            pipe_.InitBuffer(zeroBuf_, kZeroBytes);
        } else {
            pipe_.InitBuffer(outQ_, 2, kTile * sizeof(T));
        }
        if constexpr (!kFloat) pipe_.InitBuffer(xBuf_, kTile * sizeof(float));
        if constexpr (!kFloat || kEncode) pipe_.InitBuffer(yBuf_, kTile * sizeof(float));
        pipe_.InitBuffer(absBuf_, (kTile + kSlack) * sizeof(float));
        pipe_.InitBuffer(e0Buf_, (kTile + kSlack) * sizeof(float));
        pipe_.InitBuffer(e1Buf_, (kTile + kSlack) * sizeof(float));
        pipe_.InitBuffer(tmpBuf_, (kTile + kSlack) * sizeof(float));
        pipe_.InitBuffer(blkBuf_, vec::kBlockArrays * kBlockCap * sizeof(float));
        pipe_.InitBuffer(maskBuf_, 2 * (kTile + kSlack) / 8);
        pipe_.InitBuffer(bmaskBuf_, 2 * kBlockMaskBytes);
        pipe_.InitBuffer(bfBuf_, (kTile + kSlack) * sizeof(bfloat16_t));
        pipe_.InitBuffer(constBuf_, 3 * kRepeatFloats * sizeof(uint32_t));
        s_.abs = absBuf_.template Get<float>();
        s_.e0 = e0Buf_.template Get<float>();
        s_.e1 = e1Buf_.template Get<float>();
        s_.tmp = tmpBuf_.template Get<float>();
        const AscendC::LocalTensor<float> blk = blkBuf_.template Get<float>();
        for (uint32_t i = 0; i < vec::kBlockArrays; ++i) s_.b[i] = blk[i * kBlockCap];
        const AscendC::LocalTensor<uint8_t> masks = maskBuf_.template Get<uint8_t>();
        s_.mask = masks;
        s_.mask2 = masks[(kTile + kSlack) / 8];
        const AscendC::LocalTensor<uint8_t> bmasks = bmaskBuf_.template Get<uint8_t>();
        s_.bmask = bmasks;
        s_.bmask2 = bmasks[kBlockMaskBytes];
        s_.bf = bfBuf_.template Get<bfloat16_t>();
        const AscendC::LocalTensor<uint32_t> consts = constBuf_.template Get<uint32_t>();
        s_.expMask = consts;
        s_.signMask = consts[kRepeatFloats];
        s_.absMask = consts[2 * kRepeatFloats];
        vec::InitConstants(s_);
        family_.Init(p);
        if constexpr (kEncode) {
            tables_.lut = lutBuf_.template Get<half>();
            tables_.offMask = encConstBuf_.template Get<uint32_t>();
            const AscendC::LocalTensor<float> weights = encConstBuf_.template Get<float>();
            for (uint32_t i = 0; i < 3; ++i) tables_.weights[i] = weights[(i + 1) * kRepeatFloats];
            enc::BuildTable(tables_, family_.TableOf());
            zeros_ = zeroBuf_.template Get<uint8_t>();
            AscendC::Duplicate(zeros_.template ReinterpretCast<uint16_t>(), static_cast<uint16_t>(0),
                               static_cast<int32_t>(kZeroBytes / 2));
            const event_t toMte3 = static_cast<event_t>(AscendC::GetTPipePtr()->FetchEventID(AscendC::HardEvent::V_MTE3));
            AscendC::SetFlag<AscendC::HardEvent::V_MTE3>(toMte3);
            AscendC::WaitFlag<AscendC::HardEvent::V_MTE3>(toMte3);
        }
    }

    __aicore__ inline void Process() {
        if constexpr (Family::kTensorAmax) {
            if (family_.NeedsTensorAmax()) TensorScale();
        }
        if (g_.tileRows > 0) {
            for (uint32_t r = row0_; r < row1_; r += g_.tileRows) Run(RowTile(r, MinU(g_.tileRows, row1_ - r)));
        } else if (!g_.wideBlocks) {
            for (uint32_t r = row0_; r < row1_; ++r)
                for (uint32_t b = 0; b < g_.blocksPerRow; b += g_.chunkBlocks) Run(ChunkTile(r, b));
        } else {
            for (uint32_t r = row0_; r < row1_; ++r)
                for (uint32_t b = 0; b < g_.blocksPerRow; ++b) RunWideBlock(r, b);
        }
    }

 private:
    static constexpr bool kFloat = IsSame<T, float>::value;
    static constexpr uint32_t kAlign = kUbBlockBytes / sizeof(T);
    static constexpr uint32_t kBlockCap = kQdTileElems / 8 + kRepeatFloats;  // per-block array
    static constexpr uint32_t kBlockMaskBytes = RoundUp(kBlockCap / 8, kUbBlockBytes);
    static constexpr uint32_t kZeroBytes = 1024;  // Quantize: zero codes for padded blocks

    // `rows` rows from `row`, columns [col, col + cols) of each; `blocks` blocks of `stride` UB
    // elements per row.
    struct Tile {
        uint32_t row, rows, col, cols, blocks, stride;
    };

    __aicore__ inline Tile RowTile(uint32_t row, uint32_t rows) const {
        return Tile{row, rows, 0, p_.cols, g_.blocksPerRow, g_.blockStride};
    }
    __aicore__ inline Tile ChunkTile(uint32_t row, uint32_t block0) const {
        const uint32_t blocks = MinU(g_.chunkBlocks, g_.blocksPerRow - block0);
        const uint32_t col = block0 * g_.block;
        return Tile{row, 1, col, MinU(p_.cols - col, blocks * g_.block), blocks, g_.blockStride};
    }
    // A piece of a block longer than a tile: one "block" of its own.
    __aicore__ inline Tile PieceTile(uint32_t row, uint32_t col, uint32_t cols) const {
        return Tile{row, 1, col, cols, 1, RoundUp(cols, kAlign)};
    }

    // Every block its own DMA block: several blocks per row whose length is not a whole number
    // of 32-byte blocks of T.
    __aicore__ inline bool Blockwise(const Tile& t) const { return t.blocks > 1 && g_.blockStride != g_.block; }
    __aicore__ inline uint32_t RowLen(const Tile& t) const { return t.blocks * t.stride; }
    __aicore__ inline uint64_t GmOffset(uint32_t row, uint32_t col) const {
        return static_cast<uint64_t>(row) * p_.cols + col;
    }

    __aicore__ inline void Run(const Tile& t) {
        CopyIn(t);
        Compute(t, false, 0.0f, 0.0f);
        CopyOut(t);
    }

    // A block spanning several tiles: its amax first when the family needs one, then its pieces.
    __aicore__ inline void RunWideBlock(uint32_t row, uint32_t block) {
        const uint32_t c0 = block * g_.block;
        const uint32_t c1 = MinU(p_.cols, c0 + g_.block);
        float amax = 0.0f;
        float nan = 0.0f;
        if constexpr (Family::kBlockAmax) {
            if (family_.NeedsBlockAmax()) amax = WideBlockAmax(row, c0, c1, nan);
        }
        for (uint32_t c = c0; c < c1; c += kQdTileElems) {
            const Tile t = PieceTile(row, c, MinU(kQdTileElems, c1 - c));
            CopyIn(t);
            Compute(t, true, amax, nan);
            CopyOut(t);
        }
        if constexpr (kEncode) {
            // formats pads a short last block to the whole block: the codes of zero (0) past it
            const uint64_t rowCodes = static_cast<uint64_t>(g_.blocksPerRow) * blockCodeBytes_;
            const uint32_t written = ((c1 - c0) * codeBits_ + 7) / 8;
            uint64_t gm = row * rowCodes + static_cast<uint64_t>(block) * blockCodeBytes_ + written;
            for (uint32_t left = blockCodeBytes_ - written; left > 0;) {
                const uint32_t bytes = MinU(left, kZeroBytes);
                AscendC::DataCopyPad(codesGm_[gm], zeros_, AscendC::DataCopyExtParams{1, bytes, 0, 0, 0});
                gm += bytes;
                left -= bytes;
            }
        }
    }

    // ---------------------------------------------------------------- data movement

    __aicore__ inline void CopyIn(const Tile& t) {
        const AscendC::LocalTensor<T> in = inQ_.template AllocTensor<T>();
        const AscendC::DataCopyPadExtParams<T> noPad{false, 0, 0, 0};
        const uint32_t size = sizeof(T);
        if (!Blockwise(t)) {
            const uint32_t len = t.cols * size;
            const AscendC::DataCopyExtParams cp{static_cast<uint16_t>(t.rows), len, (p_.cols - t.cols) * size,
                                                (RowLen(t) * size - RoundUp(len, kUbBlockBytes)) / kUbBlockBytes, 0};
            AscendC::DataCopyPad(in, xGm_[GmOffset(t.row, t.col)], cp, noPad);
        } else if (Uniform(t)) {
            const AscendC::DataCopyExtParams cp{static_cast<uint16_t>(t.rows * t.blocks), g_.block * size, 0,
                                                BlockGap(t), 0};
            AscendC::DataCopyPad(in, xGm_[GmOffset(t.row, t.col)], cp, noPad);
        } else {
            const uint32_t full = t.cols / g_.block;
            const uint32_t tail = t.cols % g_.block;
            for (uint32_t r = 0; r < t.rows; ++r) {
                const uint64_t gm = GmOffset(t.row + r, t.col);
                if (full > 0)
                    AscendC::DataCopyPad(in[r * RowLen(t)], xGm_[gm],
                                         AscendC::DataCopyExtParams{static_cast<uint16_t>(full), g_.block * size, 0,
                                                                    BlockGap(t), 0},
                                         noPad);
                if (tail > 0)
                    AscendC::DataCopyPad(in[r * RowLen(t) + full * t.stride], xGm_[gm + full * g_.block],
                                         AscendC::DataCopyExtParams{1, tail * size, 0, 0, 0}, noPad);
            }
        }
        inQ_.EnQue(in);
    }

    // 32-byte blocks between one block's data and the next block in UB (Blockwise tiles).
    __aicore__ inline uint32_t BlockGap(const Tile& t) const {
        return (t.stride * static_cast<uint32_t>(sizeof(T)) - RoundUp(g_.block * static_cast<uint32_t>(sizeof(T)), kUbBlockBytes)) /
               kUbBlockBytes;
    }

    __aicore__ inline void CopyOut(const Tile& t) {
        if constexpr (kEncode) {
            CopyOutEncoded(t);
            return;
        }
        const AscendC::LocalTensor<T> out = outQ_.template DeQue<T>();
        const uint32_t size = sizeof(T);
        if (!Blockwise(t)) {
            const uint32_t len = t.cols * size;
            const AscendC::DataCopyExtParams cp{static_cast<uint16_t>(t.rows), len,
                                                (RowLen(t) * size - RoundUp(len, kUbBlockBytes)) / kUbBlockBytes,
                                                (p_.cols - t.cols) * size, 0};
            AscendC::DataCopyPad(yGm_[GmOffset(t.row, t.col)], out, cp);
        } else if (Uniform(t)) {
            AscendC::DataCopyPad(yGm_[GmOffset(t.row, t.col)], out,
                                 AscendC::DataCopyExtParams{static_cast<uint16_t>(t.rows * t.blocks), g_.block * size, 0, 0, 0});
        } else {
            const uint32_t full = t.cols / g_.block;
            const uint32_t tail = t.cols % g_.block;
            for (uint32_t r = 0; r < t.rows; ++r) {
                const uint64_t gm = GmOffset(t.row + r, t.col);
                if (full > 0)
                    AscendC::DataCopyPad(yGm_[gm], out[r * RowLen(t)],
                                         AscendC::DataCopyExtParams{static_cast<uint16_t>(full), g_.block * size, 0, 0, 0});
                if (tail > 0)
                    AscendC::DataCopyPad(yGm_[gm + full * g_.block], out[r * RowLen(t) + full * t.stride],
                                         AscendC::DataCopyExtParams{1, tail * size, 0, 0, 0});
            }
        }
        outQ_.FreeTensor(out);
    }

    // Quantize: the tile's codes (and its blocks' scale bytes) to their place in the Packed
    // rows. Every block has blockCodeBytes_ in GM (a last, shorter block is padded with the
    // codes of zero, as formats pads it). Blocks that fill their stride: one span of codes for
    // the tile (its rows are whole rows, or one row's consecutive blocks); else one DMA block
    // per block. A piece of a longer block writes its own codes, and the block's scale with
    // its first piece.
    __aicore__ inline void CopyOutEncoded(const Tile& t) {
        const AscendC::LocalTensor<uint8_t> codes = outQ_.template DeQue<uint8_t>();
        const AscendC::LocalTensor<uint8_t> scales = scaleQ_.template DeQue<uint8_t>();
        const uint32_t block = t.col / g_.block;  // the tile's first block in its row
        const bool piece = t.cols < g_.block && t.blocks == 1 && g_.wideBlocks;
        const uint64_t rowCodes = static_cast<uint64_t>(g_.blocksPerRow) * blockCodeBytes_;
        uint64_t gm = t.row * rowCodes + static_cast<uint64_t>(block) * blockCodeBytes_;
        if (piece) {
            gm += (t.col - block * g_.block) * codeBits_ / 8;
            const uint32_t bytes = (t.cols * codeBits_ + 7) / 8;
            AscendC::DataCopyPad(codesGm_[gm], codes, AscendC::DataCopyExtParams{1, bytes, 0, 0, 0});
        } else if (t.stride == g_.block) {
            const uint32_t bytes = t.rows * t.blocks * blockCodeBytes_;
            AscendC::DataCopyPad(codesGm_[gm], codes, AscendC::DataCopyExtParams{1, bytes, 0, 0, 0});
        } else {
            const uint32_t ubBytes = t.stride * codeBits_ / 8;  // a multiple of 32 (PlanQuantize)
            const uint32_t gap = (ubBytes - RoundUp(blockCodeBytes_, kUbBlockBytes)) / kUbBlockBytes;
            AscendC::DataCopyPad(codesGm_[gm], codes,
                                 AscendC::DataCopyExtParams{static_cast<uint16_t>(t.rows * t.blocks), blockCodeBytes_,
                                                            gap, 0, 0});
        }
        if (blockScaleBytes_ != 0 && (!piece || t.col == block * g_.block)) {
            const uint64_t rowScales = static_cast<uint64_t>(g_.blocksPerRow) * blockScaleBytes_;
            const uint32_t bytes = t.rows * t.blocks * blockScaleBytes_;
            AscendC::DataCopyPad(scalesGm_[t.row * rowScales + static_cast<uint64_t>(block) * blockScaleBytes_], scales,
                                 AscendC::DataCopyExtParams{1, bytes, 0, 0, 0});
        }
        outQ_.FreeTensor(codes);
        scaleQ_.FreeTensor(scales);
    }

    // Blockwise rows that are whole blocks and follow each other in GM: one DMA for the tile.
    __aicore__ inline bool Uniform(const Tile& t) const { return t.cols == p_.cols && t.cols % g_.block == 0; }

    // ---------------------------------------------------------------- compute

    // The dequeued tile as float32 with zeros in every lane past the data.
    __aicore__ inline AscendC::LocalTensor<float> Float32(const AscendC::LocalTensor<T>& in, const Tile& t) {
        const uint32_t n = vec::Whole(t.rows * RowLen(t));
        AscendC::LocalTensor<float> x;
        if constexpr (kFloat) {
            x = in;
        } else {
            x = xBuf_.template Get<float>();
            AscendC::Cast(x, in, AscendC::RoundMode::CAST_NONE, n);
        }
        ZeroPadding(x, t);
        return x;
    }

    __aicore__ inline void ZeroPadding(const AscendC::LocalTensor<float>& x, const Tile& t) const {
        const uint32_t rowLen = RowLen(t);
        if (!Blockwise(t)) {
            if (t.cols == rowLen) return;
            vec::ZeroBlockTails(x, t.rows, t.cols, rowLen);
            return;
        }
        if (Uniform(t)) {
            vec::ZeroBlockTails(x, t.rows * t.blocks, g_.block, t.stride);
            return;
        }
        const uint32_t full = t.cols / g_.block;
        const uint32_t tail = t.cols % g_.block;
        for (uint32_t r = 0; r < t.rows; ++r) {
            vec::ZeroBlockTails(x[r * rowLen], full, g_.block, t.stride);
            if (tail > 0) vec::ZeroRange(x, r * rowLen + full * t.stride + tail, r * rowLen + (full + 1) * t.stride);
        }
    }

    __aicore__ inline void Compute(const Tile& t, bool piece, float amax, float nan) {
        if constexpr (kEncode) {
            Encode(t, piece, amax, nan);
            return;
        }
        const AscendC::LocalTensor<T> in = inQ_.template DeQue<T>();
        const AscendC::LocalTensor<T> out = outQ_.template AllocTensor<T>();
        const uint32_t n = vec::Whole(t.rows * RowLen(t));
        const AscendC::LocalTensor<float> x = Float32(in, t);
        AscendC::LocalTensor<float> y;
        if constexpr (kFloat) y = out; else y = yBuf_.template Get<float>();
        bool done = false;
        if constexpr (Family::kBlockAmax) {
            if (piece) {
                family_.RunBlock(s_, x, y, t.stride, amax);
                done = true;
            }
        }
        if (!done) family_.Run(s_, x, y, t.rows * t.blocks, t.stride);
        if constexpr (!kFloat) AscendC::Cast(out, y, AscendC::RoundMode::CAST_RINT, n);
        outQ_.EnQue(out);
        inQ_.FreeTensor(in);
    }

    __aicore__ inline void Encode(const Tile& t, bool piece, float amax, float nan) {
        const AscendC::LocalTensor<T> in = inQ_.template DeQue<T>();
        const AscendC::LocalTensor<uint8_t> codes = outQ_.template AllocTensor<uint8_t>();
        const AscendC::LocalTensor<uint8_t> scales = scaleQ_.template AllocTensor<uint8_t>();
        const AscendC::LocalTensor<float> x = Float32(in, t);
        const AscendC::LocalTensor<float> y = yBuf_.template Get<float>();
        bool done = false;
        if constexpr (Family::kBlockAmax) {
            if (piece) {
                family_.EncodeBlock(s_, tables_, x, y, t.stride, amax, nan, codes, scales);
                done = true;
            }
        }
        if (!done) family_.Encode(s_, tables_, x, y, t.rows * t.blocks, t.stride, codes, scales);
        outQ_.EnQue(codes);
        scaleQ_.EnQue(scales);
        inQ_.FreeTensor(in);
    }

    // The maximum of |x| over the (already enqueued) tile into dst[0]; NaN and Inf count as
    // `fill` (+Inf or 0). Padding lanes are zero, and only the tile's own lanes are reduced.
    __aicore__ inline void TileAmax(const Tile& t, float fill, const AscendC::LocalTensor<float>& dst) {
        const AscendC::LocalTensor<T> in = inQ_.template DeQue<T>();
        const AscendC::LocalTensor<float> x = Float32(in, t);
        const uint32_t live = t.rows * RowLen(t);
        if constexpr (kEncode) enc::NanBlocks(s_, x, s_.b[9], 1, live);  // Quantize stores NaN apart from Inf
        if (fill == 0.0f) vec::AbsFinite(s_.abs, x, s_.mask, s_, vec::Whole(live));
        else vec::AbsFill(s_.abs, x, s_, vec::Whole(live));
        vec::BlockMax(dst, s_.abs, 1, live, s_.tmp);
        inQ_.FreeTensor(in);
    }

    // The Inf-poisoned amax of columns [c0, c1) of a row, read tile by tile; Quantize: `nan`
    // 1 where they hold a NaN, else 0.
    __aicore__ inline float WideBlockAmax(uint32_t row, uint32_t c0, uint32_t c1, float& nan) {
        const AscendC::LocalTensor<float>& acc = s_.b[11];
        const AscendC::LocalTensor<float>& part = s_.b[10];
        const AscendC::LocalTensor<float>& accNan = s_.b[8];
        AscendC::Duplicate(acc, 0.0f, static_cast<int32_t>(kRepeatFloats));
        AscendC::Duplicate(accNan, 0.0f, static_cast<int32_t>(kRepeatFloats));
        for (uint32_t c = c0; c < c1; c += kQdTileElems) {
            const Tile t = PieceTile(row, c, MinU(kQdTileElems, c1 - c));
            CopyIn(t);
            TileAmax(t, vec::kInf, part);
            AscendC::Max(acc, acc, part, 1);
            if constexpr (kEncode) AscendC::Max(accNan, accNan, s_.b[9], 1);
        }
        const float amax = ScalarOf(acc);
        nan = accNan.GetValue(0);
        return amax;
    }

    // The tensor amax: every core publishes its maximum in its 32-byte workspace slot, all
    // cores meet in SyncAll, then each reduces all slots. Idle cores publish 0.
    // NVFP4: over the finite |x|, then ts = amax / (6 * 448) (1 if that is 0) and
    // den = fp32(6 * ts). HiF8 scale="tensor": NaN and Inf count as +Inf (kTensorAmaxFill), and
    // the family gets the amax itself (kRawTensorAmax).
    __aicore__ inline void TensorScale() {
        using namespace AscendC;
        const LocalTensor<float>& acc = s_.b[11];
        const LocalTensor<float>& part = s_.b[10];
        const LocalTensor<float>& slots = s_.b[9];
        const LocalTensor<float>& accNan = s_.b[6];
        Duplicate(acc, 0.0f, static_cast<int32_t>(kRepeatFloats));
        Duplicate(accNan, 0.0f, static_cast<int32_t>(kRepeatFloats));
        if (g_.tileRows > 0) {
            for (uint32_t r = row0_; r < row1_; r += g_.tileRows) AccumulateAmax(RowTile(r, MinU(g_.tileRows, row1_ - r)));
        } else if (!g_.wideBlocks) {
            for (uint32_t r = row0_; r < row1_; ++r)
                for (uint32_t b = 0; b < g_.blocksPerRow; b += g_.chunkBlocks) AccumulateAmax(ChunkTile(r, b));
        } else {
            for (uint32_t r = row0_; r < row1_; ++r)
                for (uint32_t c = 0; c < p_.cols; c += kQdTileElems)
                    AccumulateAmax(PieceTile(r, c, MinU(kQdTileElems, p_.cols - c)));
        }
        const event_t toMte3 = static_cast<event_t>(GetTPipePtr()->FetchEventID(HardEvent::V_MTE3));
        SetFlag<HardEvent::V_MTE3>(toMte3);
        WaitFlag<HardEvent::V_MTE3>(toMte3);
        DataCopy(wsGm_[8ull * GetBlockIdx()], acc, 8);
        if constexpr (kEncode) DataCopy(wsGm_[8ull * (GetBlockNum() + GetBlockIdx())], accNan, 8);
        PipeBarrier<PIPE_ALL>();
        SyncAll();
        const uint32_t cores = static_cast<uint32_t>(GetBlockNum());
        if constexpr (kEncode) {
            Duplicate(accNan, 0.0f, static_cast<int32_t>(kRepeatFloats));
            for (uint32_t c = 0; c < cores; c += kBlockCap / 8 - 8) {
                const uint32_t count = MinU(kBlockCap / 8 - 8, cores - c);
                DataCopy(slots, wsGm_[8ull * (cores + c)], 8 * count);
                const event_t toV = static_cast<event_t>(GetTPipePtr()->FetchEventID(HardEvent::MTE2_V));
                SetFlag<HardEvent::MTE2_V>(toV);
                WaitFlag<HardEvent::MTE2_V>(toV);
                vec::BlockMax(part, slots, 1, 8 * count, s_.tmp);
                Max(accNan, accNan, part, 1);
            }
        }
        Duplicate(acc, 0.0f, static_cast<int32_t>(kRepeatFloats));
        for (uint32_t c = 0; c < cores; c += kBlockCap / 8 - 8) {
            const uint32_t count = MinU(kBlockCap / 8 - 8, cores - c);
            DataCopy(slots, wsGm_[8ull * c], 8 * count);
            const event_t toV = static_cast<event_t>(GetTPipePtr()->FetchEventID(HardEvent::MTE2_V));
            SetFlag<HardEvent::MTE2_V>(toV);
            WaitFlag<HardEvent::MTE2_V>(toV);
            vec::BlockMax(part, slots, 1, 8 * count, s_.tmp);
            Max(acc, acc, part, 1);
        }
        if constexpr (Family::kRawTensorAmax) {
            family_.SetTensorAmax(ScalarOf(acc));
            if constexpr (kEncode) family_.SetTensorNan(accNan.GetValue(0));
        } else {
            const LocalTensor<float>& ts = s_.b[8];
            const LocalTensor<float>& den = s_.b[7];
            const int32_t c64 = static_cast<int32_t>(kRepeatFloats);
            Duplicate(ts, 2688.0f, c64);
            Div(ts, acc, ts, c64);
            vec::NonZeroMask(s_.bmask, acc, kRepeatFloats);
            Select(ts, s_.bmask, ts, 1.0f, SELMODE::VSEL_TENSOR_SCALAR_MODE, kRepeatFloats);
            Muls(den, ts, 6.0f, c64);
            const float tsValue = ScalarOf(ts);
            family_.SetTensorScale(tsValue, den.GetValue(0));
        }
    }

    __aicore__ inline void AccumulateAmax(const Tile& t) {
        CopyIn(t);
        TileAmax(t, Family::kTensorAmaxFill, s_.b[10]);
        AscendC::Max(s_.b[11], s_.b[11], s_.b[10], 1);
        if constexpr (kEncode) AscendC::Max(s_.b[6], s_.b[6], s_.b[9], 1);
    }

    // v[0] on the scalar unit, once the vector unit has written it.
    __aicore__ inline static float ScalarOf(const AscendC::LocalTensor<float>& v) {
        const event_t toS = static_cast<event_t>(AscendC::GetTPipePtr()->FetchEventID(AscendC::HardEvent::V_S));
        AscendC::SetFlag<AscendC::HardEvent::V_S>(toS);
        AscendC::WaitFlag<AscendC::HardEvent::V_S>(toS);
        return v.GetValue(0);
    }

    QuantDequantParams p_{};
    QdLayout g_{};
    uint32_t codeBits_ = 8, blockCodeBytes_ = 0, blockScaleBytes_ = 0;  // Quantize
    enc::Tables tables_{};
    uint32_t row0_ = 0, row1_ = 0;
    Family family_{};
    vec::Scratch s_{};
    AscendC::TPipe pipe_;
    AscendC::TQue<AscendC::QuePosition::VECIN, 2> inQ_;
    AscendC::TQue<AscendC::QuePosition::VECOUT, 2> outQ_, scaleQ_;
    AscendC::TBuf<AscendC::QuePosition::VECCALC> xBuf_, yBuf_, absBuf_, e0Buf_, e1Buf_, tmpBuf_, blkBuf_, maskBuf_,
        bmaskBuf_, bfBuf_, constBuf_, lutBuf_, encConstBuf_, zeroBuf_;
    AscendC::LocalTensor<uint8_t> zeros_;
    AscendC::GlobalTensor<T> xGm_, yGm_;
    AscendC::GlobalTensor<uint8_t> codesGm_, scalesGm_;
    AscendC::GlobalTensor<float> wsGm_;
};

}  // namespace npuq
