"""``gluonres export``, ``predict`` and ``int8-bench``: exports and what runs them.

``predict`` loads the runtime only: an export runs without gluonres's model code.
"""
from gluonres.cli._common import (add_calibration_options, add_command, add_model_options,
                                  add_normalisation_options, add_size_option, calibration_kwargs,
                                  emit, model_kwargs)


#: ``--engine`` choices: gluonres.deploy.engines.ENGINES, spelled out so that parsing the
#: command line loads no mxnet (a test keeps the two equal)
ENGINES = ("mxnet", "onnxruntime", "openvino")


def add_parsers(sub):
    p = add_command(sub, "export", cmd_export,
                    "export symbol/params + manifest (and ONNX, INT8) for deployment")
    add_model_options(p)
    add_size_option(p, "the size the weights record, else the model's")
    p.add_argument("--weights", help="weights to export (default: fresh initialisation)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--batch", type=int, default=1, help="batch size of the traced graph")
    p.add_argument("--seed", type=int, default=0, help="seed for fresh weights")
    add_normalisation_options(p)
    p.add_argument("--onnx", action="store_true", help="also write NAME.onnx (dynamic batch)")
    p.add_argument("--int8", action="store_true",
                   help="also write a oneDNN INT8 graph, calibrated on --calib-data")
    p.add_argument("--calib-data",
                   help="image folder (or .tar.gz) whose train/ split calibrates --int8")
    add_calibration_options(p)

    p = add_command(sub, "predict", cmd_predict,
                    "classify images with an exported folder only (no model code)")
    p.add_argument("folder", help="folder written by `gluonres export`")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument("--top-k", type=int, default=5, help="classes to show per image")
    p.add_argument("--int8", action="store_true", help="run the INT8 graph (export --int8)")
    p.add_argument("--engine", choices=ENGINES, default="mxnet",
                   help="what runs the forward pass (default mxnet); onnxruntime and "
                        "openvino run the export's ONNX file (export --onnx) and need "
                        "pip install 'gluonres[engines]'; `gluonres bench --export DIR` "
                        "says which is fastest here")

    p = add_command(sub, "int8-bench", cmd_int8_bench,
                    "FP32 vs INT8: test accuracy and throughput, side by side")
    add_model_options(p)
    p.add_argument("--weights", required=True, help="trained weights")
    p.add_argument("--data", required=True,
                   help="image-folder root with train/ (calibration) and test/ splits")
    add_normalisation_options(p)
    add_calibration_options(p)
    p.add_argument("--batch", type=int, default=64, help="throughput batch size")
    p.add_argument("--repeats", type=int, default=7,
                   help="timed repeats per graph; the median is reported")
    p.add_argument("--out", default="results", help="folder for int8-MODEL.json and .md")
    p.add_argument("--docs", help="markdown file whose int8 table to update in place")
    p.add_argument("--export-dir", help="keep the export here (default: a temporary folder)")


def cmd_export(args):
    from gluonres.deploy.exporter import export_weights
    from gluonres.errors import GluonresError

    if args.int8 and not args.calib_data:
        raise GluonresError("--int8 needs --calib-data DIR, an image folder (with a train/ "
                            "split) to calibrate the int8 ranges on")
    paths = export_weights(args.model, args.out, args.weights, batch=args.batch,
                           mean=args.mean, std=args.std, seed=args.seed, onnx=args.onnx,
                           calib_data=args.calib_data if args.int8 else None, size=args.size,
                           **calibration_kwargs(args), **model_kwargs(args))
    emit(args, {"model": args.model, **paths},
         "\n".join(f"{k:<12} {v}" for k, v in paths.items()))


def cmd_predict(args):
    import sys

    from gluonres._untrusted import printable
    from gluonres.deploy import engines

    exported = engines.load(args.folder, args.engine, "int8" if args.int8 else "fp32")
    predictions = exported.predict(args.images, top_k=args.top_k)
    record = {"folder": args.folder, "model": exported.manifest["model"],
              "variant": exported.variant, "engine": exported.engine,
              "predictions": predictions}
    lines = []
    for p in predictions:  # class names and paths are untrusted: escaped, one line each
        best = ", ".join(f"{printable(t['class'])} {100 * t['probability']:.1f}%"
                         for t in p["top_k"])
        lines.append(f"{printable(p['image'])}: {best}")
    # and printable whatever the terminal's encoding (--json output is ASCII already)
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    text = "\n".join(lines).encode(encoding, "backslashreplace").decode(encoding)
    emit(args, record, text)


def cmd_int8_bench(args):
    from gluonres.measure import int8

    record = int8.int8_bench(args.model, args.weights, args.data, out=args.out, docs=args.docs,
                             export_dir=args.export_dir, batch_size=args.batch,
                             repeats=args.repeats, mean=args.mean, std=args.std,
                             command="gluonres " + " ".join(args.argv), progress=not args.json,
                             **calibration_kwargs(args), **model_kwargs(args))
    emit(args, record, int8.report_table(record))
