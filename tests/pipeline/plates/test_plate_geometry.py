"""Plate geometry (``pipeline.plates.geometry``): projected plate corners, growing a quad along its own axes,
compositing a real plate into a scene and warping it back upright, and the angles read off a quad."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.plates.dataset import plate_disjoint_split, read_labels
from pipeline.plates.geometry import composite, expand_quad, plate_quad, quad_angles, quad_size, rectify


def _edge(quad: np.ndarray, a: int, b: int) -> float:
    return float(np.linalg.norm(quad[b] - quad[a]))


def _top_angle(quad: np.ndarray) -> float:
    top = quad[1] - quad[0]
    return math.degrees(math.atan2(float(top[1]), float(top[0])))


@pytest.fixture(scope="module")
def real_crops(shared_dir: Path) -> list[np.ndarray]:
    """Three real car plate crops of the plate-disjoint validation split."""
    samples = read_labels(shared_dir / "data" / "plates_thai" / "labels.csv")
    _, val = plate_disjoint_split(samples, 0.15, 0)
    crops = [cv2.imread(str(samples[i].path)) for i in val[::300][:3]]
    assert all(c is not None for c in crops)
    return crops


@pytest.fixture(scope="module")
def background(shared_dir: Path) -> np.ndarray:
    """A real street photo (OpenALPR EU) as the scene a plate is composited into."""
    image = cv2.imread(str(shared_dir / "data" / "plates_openalpr_eu" / "images" / "eu1.jpg"))
    assert image is not None
    return image


@pytest.mark.parametrize(("width", "aspect"), [(200.0, 2.0), (96.0, 1.14), (333.0, 4.5)])
def test_frontal_plate_is_an_upright_rectangle_of_the_asked_size(width: float, aspect: float) -> None:
    """No rotation: corners TL, TR, BR, BL of an axis-aligned ``width`` x ``width / aspect`` box centred on 0."""
    q = plate_quad(width, aspect)
    assert q.shape == (4, 2) and q.dtype == np.float32
    h = width / aspect
    expected = np.float32([[-width / 2, -h / 2], [width / 2, -h / 2], [width / 2, h / 2], [-width / 2, h / 2]])
    assert np.allclose(q, expected, atol=1e-3)
    assert quad_size(q) == pytest.approx((width, h), rel=1e-5)
    assert quad_angles(q) == pytest.approx((0.0, 0.0), abs=1e-4)


@pytest.mark.parametrize("roll", [-35.0, -10.0, 20.0, 33.0])
def test_roll_turns_the_top_edge_by_the_roll_angle(roll: float) -> None:
    """Roll is an in-plane rotation (image y down: positive roll turns the top edge clockwise); the plate keeps
    its width, its height and its right angles, and its corners stay in reading order."""
    q = plate_quad(180.0, 2.0, roll=roll)
    assert _top_angle(q) == pytest.approx(roll, abs=1e-3)
    assert _edge(q, 0, 1) == pytest.approx(180.0, rel=1e-4) and _edge(q, 1, 2) == pytest.approx(90.0, rel=1e-4)
    r, dev = quad_angles(q)
    assert r == pytest.approx(roll, abs=1e-3) and dev < 1e-3
    assert np.allclose(q.mean(axis=0), 0.0, atol=1e-3)
    # the top-left corner stays the one that reads first: above the bottom-left one along the plate's own axis
    down = np.array([-math.sin(math.radians(roll)), math.cos(math.radians(roll))])
    assert float(np.dot(q[3] - q[0], down)) > 0


@pytest.mark.parametrize("yaw", [25.0, -25.0, 45.0])
def test_yaw_shortens_the_far_side(yaw: float) -> None:
    """Yaw turns the plate about its vertical axis: the side turned away from the camera is shorter, the top edge
    tilts a little (perspective) and the quad is no longer a rectangle; the opposite yaw mirrors it."""
    q = plate_quad(200.0, 2.0, yaw=yaw)
    left, right = _edge(q, 3, 0), _edge(q, 1, 2)
    short, long_ = sorted((left, right))
    assert short < 0.95 * long_, (left, right)
    # with yaw > 0 the plate's left edge is the far one (smaller), mirrored for yaw < 0
    assert (left < right) == (yaw > 0)
    mirrored = plate_quad(200.0, 2.0, yaw=-yaw)
    assert _edge(mirrored, 3, 0) == pytest.approx(right, rel=1e-4)
    assert _edge(mirrored, 1, 2) == pytest.approx(left, rel=1e-4)
    assert quad_angles(q)[1] > 1.0  # corner angles leave 90 degrees
    assert quad_size(q)[0] == pytest.approx(200.0, rel=1e-4)  # width stays the asked one (mean of top and bottom)
    steeper = plate_quad(200.0, 2.0, yaw=yaw, distance=2.0)  # closer camera: stronger perspective
    assert min(_edge(steeper, 3, 0), _edge(steeper, 1, 2)) / max(_edge(steeper, 3, 0), _edge(steeper, 1, 2)) \
        < short / long_


def test_pitch_narrows_the_far_edge() -> None:
    """Pitch turns the plate about its horizontal axis: one of the top and bottom edges is shorter."""
    q = plate_quad(200.0, 2.0, pitch=30.0)
    top, bottom = _edge(q, 0, 1), _edge(q, 3, 2)
    assert min(top, bottom) < 0.97 * max(top, bottom)
    assert quad_size(q)[1] < 100.0  # foreshortened height


def test_expand_quad_grows_along_the_plate_axes() -> None:
    """Frontal: each side moves out by its share of width / height; rolled: the same growth along the turned
    axes (same centre, same angle); zero margins give the quad back; negative margins shrink it."""
    q = plate_quad(200.0, 2.0)
    grown = expand_quad(q, 0.1, 0.2)
    assert np.allclose(grown, [[-120, -70], [120, -70], [120, 70], [-120, 70]], atol=1e-3)
    rolled = plate_quad(200.0, 2.0, roll=30.0) + np.float32([500, 300])
    g = expand_quad(rolled, 0.1, 0.2)
    assert quad_size(g) == pytest.approx((240.0, 140.0), rel=1e-4)
    assert np.allclose(g.mean(axis=0), [500, 300], atol=1e-3)
    assert quad_angles(g)[0] == pytest.approx(30.0, abs=1e-3)
    assert np.allclose(expand_quad(rolled, 0.0, 0.0), rolled, atol=1e-3)
    assert quad_size(expand_quad(rolled, -0.1, -0.1)) == pytest.approx((160.0, 80.0), rel=1e-4)


def test_expand_quad_respects_perspective() -> None:
    """On a yawed plate the margin follows the homography: the near side is pushed further out than the far
    side (in pixels), and the grown quad's corners lie on the plate's own edge lines."""
    q = plate_quad(200.0, 2.0, yaw=40.0, distance=2.5)
    g = expand_quad(q, 0.1, 0.0)
    far = float(np.linalg.norm(g[0] - q[0]))  # left side is the far one for yaw > 0
    near = float(np.linalg.norm(g[1] - q[1]))
    assert near > far > 0
    # zero vertical margin: the new corners lie on the lines through the old top and bottom edges
    for a, b, c in ((q[0], q[1], g[0]), (q[0], q[1], g[1]), (q[3], q[2], g[3]), (q[3], q[2], g[2])):
        ab, ac = b - a, c - a
        assert abs(float(ab[0] * ac[1] - ab[1] * ac[0])) / float(np.linalg.norm(ab)) < 1e-2


@pytest.mark.parametrize(("roll", "yaw", "pitch"), [(0.0, 0.0, 0.0), (30.0, 0.0, 0.0), (-25.0, 30.0, 15.0)])
def test_composite_then_rectify_gives_the_plate_back(real_crops: list[np.ndarray], background: np.ndarray,
                                                     roll: float, yaw: float, pitch: float) -> None:
    """A real crop composited into a real scene at a known quad and warped back with the same quad and its own
    size is the original crop again, up to resampling (measured mean abs difference 1.5-3.3 grey levels, against
    50-90 for a quad shifted by a third of the plate); the scene outside the quad is untouched."""
    for crop in real_crops:
        h, w = crop.shape[:2]
        quad = plate_quad(1.2 * w, w / h, roll, yaw, pitch) + np.float32([background.shape[1] / 2,
                                                                              background.shape[0] / 2])
        scene = composite(background, crop, quad)
        assert scene.shape == background.shape and scene.dtype == np.uint8
        back = rectify(scene, quad, (h, w))
        assert back.shape == crop.shape
        inner = (slice(2, h - 2), slice(2, w - 2))  # the anti-aliased rim mixes in the background
        diff = np.abs(back[inner].astype(np.float32) - crop[inner].astype(np.float32)).mean()
        assert diff < 6.0, diff
        # a quad shifted by a third of the plate gives a clearly different image: the comparison can fail
        shifted = rectify(scene, quad + np.float32([w * 0.35, 0]), (h, w))
        assert np.abs(shifted[inner].astype(np.float32) - crop[inner].astype(np.float32)).mean() > 3 * diff
        outside = np.ones(background.shape[:2], np.uint8)
        cv2.fillConvexPoly(outside, np.round(expand_quad(quad, 0.05, 0.1)).astype(np.int32), 0)
        assert np.array_equal(scene[outside > 0], background[outside > 0])


def test_rectify_shrinks_large_plates_without_aliasing(real_crops: list[np.ndarray]) -> None:
    """A plate much larger than the output is warped at a larger scale first and area-averaged: the result is
    closer to a plain area-resize of the plate than a single warp at the output scale (measured 4.4 against 10.5
    grey levels)."""
    crop = real_crops[0]
    big = cv2.resize(crop, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    h, w = big.shape[:2]
    quad = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    out_hw = (crop.shape[0] // 3, crop.shape[1] // 3)
    out = rectify(big, quad, out_hw)
    assert out.shape[:2] == out_hw
    reference = cv2.resize(big, (out_hw[1], out_hw[0]), interpolation=cv2.INTER_AREA).astype(np.float32)
    m = cv2.getPerspectiveTransform(quad, np.float32([[0, 0], [out_hw[1], 0], [out_hw[1], out_hw[0]],
                                                      [0, out_hw[0]]]))
    naive = cv2.warpPerspective(big, m, (out_hw[1], out_hw[0]), flags=cv2.INTER_LINEAR).astype(np.float32)
    assert np.abs(out - reference).mean() < np.abs(naive - reference).mean()


def test_rectify_repeats_the_border_outside_the_image() -> None:
    """A quad reaching past the image edge is filled with the border's pixels (no black wedge)."""
    image = np.full((50, 100, 3), 200, np.uint8)
    quad = np.float32([[-20, -10], [80, -10], [80, 40], [-20, 40]])
    out = rectify(image, quad, (50, 100))
    assert out.min() == 200


def test_quad_angles_measure_roll_and_shear() -> None:
    """Roll of the top edge in degrees (sign as in the image, y down) and the largest corner deviation from 90
    degrees: a sheared parallelogram shows its shear, a rectangle none."""
    assert quad_angles(np.float32([[0, 0], [100, 0], [100, 50], [0, 50]])) == pytest.approx((0.0, 0.0), abs=1e-6)
    r, dev = quad_angles(np.float32([[0, 0], [100, 0], [120, 50], [20, 50]]))  # sheared by atan(20/50)
    assert r == pytest.approx(0.0, abs=1e-6)
    assert dev == pytest.approx(math.degrees(math.atan2(20, 50)), abs=1e-3)
    r, _ = quad_angles(np.float32([[0, 0], [100, -100], [150, -50], [50, 50]]))
    assert r == pytest.approx(-45.0, abs=1e-4)
