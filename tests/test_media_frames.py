"""Frame format conversions: every layout, dtype, channel count and device the module doc promises."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from comfy_trickle.media.frames import (  # noqa: E402 - after the torch check
    comfy_image_to_frames,
    rgb_uint8_to_comfy_image,
    to_comfy_image,
)

pytestmark = pytest.mark.timeout(60)

H, W = 6, 10  # deliberately not channel counts, so layouts are unambiguous


def reference_rgb(batch: int = 1) -> np.ndarray:
    """B,H,W,3 uint8 with distinct values per position and channel."""
    values = np.arange(batch * H * W * 3, dtype=np.int64).reshape(batch, H, W, 3)
    return ((values * 7) % 256).astype(np.uint8)


def layout(bhwc: np.ndarray, name: str) -> np.ndarray:
    """Rearrange a B,H,W,C array into the named layout."""
    if name == "BHWC":
        return bhwc
    if name == "BCHW":
        return bhwc.transpose(0, 3, 1, 2)
    if name == "HWC":
        return bhwc[0]
    if name == "CHW":
        return bhwc[0].transpose(2, 0, 1)
    raise ValueError(name)


def as_dtype(uint8: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "uint8":
        return uint8
    return (uint8.astype(np.float32) / 255.0).astype(dtype)


LAYOUTS = ["HWC", "CHW", "BHWC", "BCHW"]
DTYPES = ["uint8", "float16", "float32"]


@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", LAYOUTS)
def test_to_comfy_image_layouts_and_dtypes(name, dtype, kind):
    rgb = reference_rgb()
    source = np.ascontiguousarray(layout(as_dtype(rgb, dtype), name))
    if kind == "torch":
        source = torch.from_numpy(source)
    image = to_comfy_image(source)
    assert image.dtype == torch.float32 and tuple(image.shape) == (1, H, W, 3)
    assert image.is_contiguous() and image.device.type == "cpu"
    tolerance = 1e-6 if dtype != "float16" else 1e-3
    assert torch.allclose(image, torch.from_numpy(rgb.astype(np.float32) / 255.0), atol=tolerance)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", LAYOUTS)
def test_comfy_image_to_frames_round_trip(name, dtype):
    rgb = reference_rgb(batch=1 if name in ("HWC", "CHW") else 3)
    arranged = layout(as_dtype(rgb, dtype), name)
    for source in (arranged, torch.from_numpy(np.ascontiguousarray(arranged))):
        frames = comfy_image_to_frames(source)
        assert len(frames) == rgb.shape[0]  # each image of the batch is one frame
        for frame, expected in zip(frames, rgb, strict=True):
            assert frame.dtype == np.uint8 and frame.shape == (H, W, 3) and frame.flags.c_contiguous
            assert np.array_equal(frame, expected)  # exact: float 0..1 values round to the same levels


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_channel_counts(channels):
    rgb = reference_rgb()
    if channels == 1:
        source = rgb[..., :1]
        expected = np.repeat(rgb[..., :1], 3, axis=-1)
    elif channels == 4:
        alpha = np.full((1, H, W, 1), 17, np.uint8)
        source = np.concatenate([rgb, alpha], axis=-1)
        expected = rgb  # alpha is dropped
    else:
        source, expected = rgb, rgb
    image = to_comfy_image(torch.from_numpy(np.ascontiguousarray(source)))
    assert tuple(image.shape) == (1, H, W, 3)
    assert np.array_equal(comfy_image_to_frames(image)[0], expected[0])
    chw = np.ascontiguousarray(source[0].transpose(2, 0, 1))  # also channels-first
    assert np.array_equal(comfy_image_to_frames(chw)[0], expected[0])


def test_grey_hw():
    grey = (np.arange(H * W) % 256).astype(np.uint8).reshape(H, W)
    image = to_comfy_image(grey)
    assert tuple(image.shape) == (1, H, W, 3)
    assert np.array_equal(comfy_image_to_frames(image)[0], np.stack([grey] * 3, axis=-1))


def test_ambiguous_shapes_are_channels_last():
    cube = np.arange(27, dtype=np.uint8).reshape(3, 3, 3)  # could be HWC or CHW: HWC wins
    image = to_comfy_image(cube)
    assert torch.equal(image[0], torch.from_numpy(cube).float() / 255)
    batch = np.arange(2 * 4 * 5 * 3, dtype=np.uint8).reshape(2, 4, 5, 3)
    assert tuple(to_comfy_image(batch).shape) == (2, 4, 5, 3)
    # 3x8x4: last dim 4 is a channel count, so HxWxC = 3x8 with RGBA, not CHW 3 channels of 8x4.
    assert tuple(to_comfy_image(np.zeros((3, 8, 4), np.uint8)).shape) == (1, 3, 8, 3)
    # Channels-first is used only when the last dim cannot be channels.
    assert tuple(to_comfy_image(np.zeros((3, 8, 5), np.uint8)).shape) == (1, 8, 5, 3)
    assert tuple(to_comfy_image(np.zeros((2, 4, 8, 5), np.uint8)).shape) == (2, 8, 5, 3)


def test_floats_are_clamped():
    image = torch.tensor([[[[-0.5, 0.5, 1.5]]]])  # 1x1x1x3
    assert to_comfy_image(image).tolist() == [[[[0.0, 0.5, 1.0]]]]
    assert comfy_image_to_frames(image)[0].tolist() == [[[0, 128, 255]]]
    assert comfy_image_to_frames(image.numpy())[0].tolist() == [[[0, 128, 255]]]


def test_bfloat16_and_float64():
    rgb = reference_rgb()
    expected = torch.from_numpy(rgb.astype(np.float32) / 255)
    assert torch.allclose(to_comfy_image(torch.from_numpy(rgb / 255.0)), expected, atol=1e-6)
    bf16 = torch.from_numpy(rgb.astype(np.float32) / 255).to(torch.bfloat16)
    assert torch.allclose(to_comfy_image(bf16), expected, atol=1e-2)


def test_rejects_what_it_cannot_read():
    with pytest.raises(ValueError, match="shape"):
        to_comfy_image(np.zeros((5, 7, 9), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        to_comfy_image(np.zeros((10,), np.uint8))
    with pytest.raises(TypeError, match="dtype"):
        to_comfy_image(np.zeros((4, 4, 3), np.int32))
    with pytest.raises(TypeError, match="numpy array or torch tensor"):
        to_comfy_image([[0, 0, 0]])
    with pytest.raises(ValueError, match="empty"):
        comfy_image_to_frames(np.zeros((0, 4, 3), np.uint8))


def test_cheap_path_from_decoded_frames():
    rgb = reference_rgb()[0]
    image = rgb_uint8_to_comfy_image(rgb)
    assert image.dtype == torch.float32 and tuple(image.shape) == (1, H, W, 3)
    assert torch.equal(image, to_comfy_image(rgb))
    with pytest.raises(ValueError, match="uint8"):
        rgb_uint8_to_comfy_image(rgb.astype(np.float32))


def test_frames_modules_work_on_numpy_without_touching_the_source():
    rgb = reference_rgb(batch=2)
    floats = rgb.astype(np.float32) / 255
    before = floats.copy()
    frames = comfy_image_to_frames(floats)
    assert np.array_equal(floats, before)
    assert [np.array_equal(f, r) for f, r in zip(frames, rgb, strict=True)] == [True, True]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_tensors_stay_on_the_gpu():
    rgb = reference_rgb(batch=2)
    on_device = torch.from_numpy(rgb).cuda()
    for source in (on_device, on_device.permute(0, 3, 1, 2).half() / 255):
        image = to_comfy_image(source)
        assert image.device.type == "cuda" and image.dtype == torch.float32
        assert tuple(image.shape) == (2, H, W, 3)
        frames = comfy_image_to_frames(image)
        assert all(np.array_equal(f, r) for f, r in zip(frames, rgb, strict=True))
    on_gpu = rgb_uint8_to_comfy_image(rgb[0], device="cuda")
    assert on_gpu.device.type == "cuda"
    assert torch.equal(on_gpu.cpu(), to_comfy_image(rgb[0]))
