from .app import main

main(prog_name="onnx-npuq")
