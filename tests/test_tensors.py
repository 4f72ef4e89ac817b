import numpy as np
import torch
from PIL import Image

from nirnet.data.tensors import to_float_tensor, to_image, to_uint8_array, to_uint8_tensor


def test_round_trip_is_exact_and_rounds_like_a_saved_image():
    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    x = to_float_tensor(Image.fromarray(arr))
    assert x.shape == (1, 3, 5, 7) and x.dtype == torch.float32
    assert np.array_equal(to_uint8_array(x[0]), arr)
    assert np.array_equal(np.asarray(to_image(x[0])), arr)
    nudged = x[0] + 0.49 / 255  # rounds back, truncation would not
    assert np.array_equal(to_uint8_array(nudged), arr)
    assert to_uint8_array(torch.full((3, 1, 1), 2.0)).tolist() == [[[255, 255, 255]]]  # clamped


def test_uint8_tensor_does_not_share_the_buffer():
    arr = np.zeros((2, 2, 3), dtype=np.uint8)
    t = to_uint8_tensor(arr)
    arr[0, 0, 0] = 9
    assert t[0, 0, 0] == 0
