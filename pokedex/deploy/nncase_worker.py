"""Runs under the nncase venv (Python 3.10, nncase 1.9): compile an ONNX model for the K210, or simulate one.

Kept free of the pokedex package and of onnxruntime (importing nncase next to onnxruntime crashes); no
module in this folder may be named nncase.py, or it would shadow the real package. It is driven by pokedex.deploy.k210 as a subprocess:

    python nncase_worker.py compile MODEL.onnx CALIB.npy OUT.kmodel --method no_clip --mean 0 0 0 --std 1 1 1
    python nncase_worker.py simulate MODEL.kmodel INPUTS.npy OUTPUTS.npy

CALIB.npy and INPUTS.npy are uint8 NCHW RGB images (the camera's format); the kmodel takes uint8 input and
applies (x / 255 - mean) / std itself. compile prints nncase's memory summary on stdout.
"""

import argparse
import sys

import numpy as np


def compile_kmodel(args):
    import nncase

    calib = np.load(args.calib)
    opts = nncase.CompileOptions()
    opts.target = "k210"
    opts.preprocess = True          # the kmodel does the normalisation: the camera gives uint8
    opts.input_type = "uint8"
    opts.input_shape = [1, *calib.shape[1:]]
    opts.input_layout = "NCHW"
    opts.input_range = [0, 1]
    opts.mean = list(args.mean)
    opts.std = list(args.std)
    opts.quant_type = "uint8"
    opts.w_quant_type = "uint8"
    compiler = nncase.Compiler(opts)
    with open(args.onnx, "rb") as f:
        compiler.import_onnx(f.read(), nncase.ImportOptions())
    ptq = nncase.PTQTensorOptions()
    ptq.samples_count = int(calib.shape[0])
    ptq.calibrate_method = args.method
    ptq.set_tensor_data(np.ascontiguousarray(calib, dtype=np.uint8).tobytes())
    compiler.use_ptq(ptq)
    compiler.compile()
    with open(args.out, "wb") as f:
        f.write(compiler.gencode_tobytes())


def simulate(args):
    import nncase

    sim = nncase.Simulator()
    with open(args.kmodel, "rb") as f:
        sim.load_model(f.read())
    outputs = []
    for image in np.load(args.inputs):
        sim.set_input_tensor(0, nncase.RuntimeTensor.from_numpy(np.ascontiguousarray(image[None], dtype=np.uint8)))
        sim.run()
        outputs.append(sim.get_output_tensor(0).to_numpy().reshape(-1))
    np.save(args.outputs, np.stack(outputs))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compile")
    c.add_argument("onnx")
    c.add_argument("calib")
    c.add_argument("out")
    c.add_argument("--method", default="no_clip")
    c.add_argument("--mean", type=float, nargs=3, default=[0.0, 0.0, 0.0])
    c.add_argument("--std", type=float, nargs=3, default=[1.0, 1.0, 1.0])
    s = sub.add_parser("simulate")
    s.add_argument("kmodel")
    s.add_argument("inputs")
    s.add_argument("outputs")
    args = parser.parse_args()
    (compile_kmodel if args.command == "compile" else simulate)(args)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
