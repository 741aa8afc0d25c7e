"""cuda-python helpers: clear errors without a GPU; real copies on a GPU."""

from __future__ import annotations

import numpy as np
import pytest

from tr2m_edge.errors import BackendError
from tr2m_edge.runtime.runners import cuda

HAS_GPU = cuda.has_cuda_device()


@pytest.mark.skipif(HAS_GPU, reason="checks the no-GPU error path")
def test_without_a_gpu_calls_fail_with_the_cuda_error_name():
    with pytest.raises(BackendError, match=r"CUDA call cudaStreamCreateWithFlags failed: cudaError\w+ .*nvidia-smi"):
        cuda.Stream()
    with pytest.raises(BackendError, match=r"CUDA call cudaGetDeviceProperties\(0\) failed"):
        cuda.device_info(0)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU")
def test_pinned_round_trip_on_two_streams():
    s1, s2 = cuda.Stream(), cuda.Stream()
    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    pinned_in, pinned_out = cuda.PinnedBuffer(), cuda.PinnedBuffer()
    dev = cuda.DeviceBuffer()
    src = pinned_in.view(frame.shape, frame.dtype)
    np.copyto(src, frame)
    cuda.copy_to_device(dev, src, s1)
    done = cuda.Event()
    done.record(s1)
    cuda.stream_wait(s2, done)
    dst = pinned_out.view(frame.shape, frame.dtype)
    cuda.copy_to_host(dst, dev, s2)
    s2.synchronize()
    np.testing.assert_array_equal(dst, frame)
    for b in (pinned_in, pinned_out, dev):
        b.free()
    for s in (s1, s2):
        s.free()
