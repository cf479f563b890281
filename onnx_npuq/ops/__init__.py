"""ONNX op set `npuq`: model-local function bodies of standard opset-21 ops (see bodies/)."""
