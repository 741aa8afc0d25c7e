"""INT8 calibration: ``tr2m-edge calib BUNDLE --images DIR`` (:func:`calibrate.calibrate_bundle`).

One concern per module: :mod:`.frames` samples disjoint calibration and held-out frames;
:mod:`.data` records every component's feeds from the bundle's fp32 graphs (the reader
ONNX Runtime's calibrator consumes); :mod:`.quantize` writes the Q/DQ graphs;
:mod:`.gate` measures INT8 against fp32; :mod:`.variant` writes the variant into the
bundle; :mod:`.engines` builds INT8 TensorRT engines; :mod:`.profile` measures per op type
where the time goes; :mod:`.calibrate` runs the steps in order. Imports the runtime and
core only.
"""
