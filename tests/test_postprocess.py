"""NMS must match Ultralytics 8.4 exactly on stored reference outputs; plus behaviour checks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from evaluators.postprocess import non_max_suppression, scale_boxes_to_original, xywh2xyxy
from spaces.errors import ArchpruneError

REF_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "ultralytics"
MODELS = ["yolov8n-rand", "yolo11n-rand"]


def _load_ref(stem: str) -> dict[str, np.ndarray]:
    path = REF_DIR / f"{stem}_ref.npz"
    if not path.is_file():
        pytest.skip(f"reference data missing: {path} (expects the shared data checkout beside the repo)")
    with np.load(path) as d:
        return {k: d[k] for k in d.files}


def _pred(boxes_xywh: list[list[float]], cls: list[int], conf: list[float], nc: int = 3) -> torch.Tensor:
    """Build a (1, 4 + nc, A) raw prediction with one scored class per anchor."""
    a = len(boxes_xywh)
    p = torch.zeros(1, 4 + nc, a)
    p[0, :4] = torch.tensor(boxes_xywh, dtype=torch.float32).T
    for k, (c, s) in enumerate(zip(cls, conf)):
        p[0, 4 + c, k] = s
    return p


@pytest.mark.parametrize("stem", MODELS)
def test_matches_ultralytics_single_image(stem: str) -> None:
    ref = _load_ref(stem)
    y1 = torch.from_numpy(ref["y1"])
    y1_before = y1.clone()
    out, idx = non_max_suppression(y1, conf_thres=0.001, iou_thres=0.7, max_det=300, return_indices=True)
    assert len(out) == len(idx) == 1
    assert idx[0].dtype == torch.int64
    # same kept anchors in the same (score) order, same values
    np.testing.assert_array_equal(idx[0].numpy(), ref["nms1_idx"])
    np.testing.assert_allclose(out[0].numpy(), ref["nms1"], rtol=0, atol=1e-4)
    assert torch.equal(y1, y1_before), "NMS must not modify its input"


@pytest.mark.parametrize("stem", MODELS)
def test_matches_ultralytics_batch(stem: str) -> None:
    ref = _load_ref(stem)
    out, idx = non_max_suppression(torch.from_numpy(ref["y2"]), return_indices=True)
    assert len(out) == 2
    for b in range(2):
        want = ref[f"nms2_{b}_idx"]
        assert set(idx[b].tolist()) == set(want.tolist())
        assert out[b].shape == (len(want), 6)
        # conf is sorted descending
        assert torch.all(out[b][1:, 4] <= out[b][:-1, 4])
        # rows for the same anchor carry the same values
        got = {int(i): row for i, row in zip(idx[b], out[b].numpy())}
        for i, row in zip(want.tolist(), ref[f"nms2_{b}"]):
            np.testing.assert_allclose(got[i], row, rtol=0, atol=1e-4)


def test_output_without_indices_is_list() -> None:
    p = _pred([[50, 50, 20, 20]], [1], [0.9])
    out = non_max_suppression(p)
    assert isinstance(out, list) and len(out) == 1
    np.testing.assert_allclose(out[0].numpy(), [[40, 40, 60, 60, 0.9, 1]], atol=1e-6)


def test_class_aware_overlapping_boxes() -> None:
    boxes = [[50, 50, 20, 20], [51, 50, 20, 20]]  # IoU ~ 0.9
    diff = non_max_suppression(_pred(boxes, [0, 2], [0.9, 0.8]), iou_thres=0.7)[0]
    assert diff.shape[0] == 2
    assert diff[:, 5].tolist() == [0.0, 2.0]
    same = non_max_suppression(_pred(boxes, [1, 1], [0.9, 0.8]), iou_thres=0.7)[0]
    assert same.shape[0] == 1 and same[0, 4].item() == pytest.approx(0.9)
    agn = non_max_suppression(_pred(boxes, [0, 2], [0.9, 0.8]), iou_thres=0.7, agnostic=True)[0]
    assert agn.shape[0] == 1 and agn[0, 5].item() == 0.0


def test_multi_label_keeps_every_class_above_conf_as_its_own_box() -> None:
    p = _pred([[50, 50, 20, 20], [120, 50, 20, 20]], [0, 1], [0.9, 0.8])
    p[0, 4 + 2, 0] = 0.6  # anchor 0 also scores class 2; anchor 1 also class 0 but at the threshold
    p[0, 4 + 0, 1] = 0.5
    single, s_idx = non_max_suppression(p, conf_thres=0.5, return_indices=True)
    multi, m_idx = non_max_suppression(p, conf_thres=0.5, return_indices=True, multi_label=True)
    assert s_idx[0].tolist() == [0, 1] and single[0][:, 5].tolist() == [0.0, 1.0]
    assert m_idx[0].tolist() == [0, 1, 0]  # anchor 0 twice (class 0 and 2); 0.5 is not > 0.5
    assert multi[0][:, 5].tolist() == [0.0, 1.0, 2.0]
    np.testing.assert_allclose(multi[0][:, 4].numpy(), [0.9, 0.8, 0.6], atol=1e-6)
    np.testing.assert_allclose(multi[0][2, :4].numpy(), multi[0][0, :4].numpy())
    # the same anchor's two labels never suppress each other, unless NMS is class-agnostic
    agnostic = non_max_suppression(p, conf_thres=0.5, multi_label=True, agnostic=True)[0]
    assert agnostic[:, 5].tolist() == [0.0, 1.0]


def test_iou_equal_to_threshold_is_kept() -> None:
    # boxes [0,0,10,10] and [5,0,15,10]: IoU = 50 / 150 = 1/3; keep when iou <= thres
    boxes = [[5, 5, 10, 10], [10, 5, 10, 10]]
    p = _pred(boxes, [0, 0], [0.9, 0.8])
    assert non_max_suppression(p, iou_thres=0.34)[0].shape[0] == 2
    assert non_max_suppression(p, iou_thres=0.33)[0].shape[0] == 1


def test_max_det_truncation_keeps_top_scores() -> None:
    # 10 disjoint boxes, increasing confidence
    boxes = [[20.0 + 30 * k, 20, 10, 10] for k in range(10)]
    conf = [0.1 + 0.05 * k for k in range(10)]
    out, idx = non_max_suppression(_pred(boxes, [0] * 10, conf), max_det=4, return_indices=True)
    assert out[0].shape == (4, 6)
    assert idx[0].tolist() == [9, 8, 7, 6]
    full = non_max_suppression(_pred(boxes, [0] * 10, conf), max_det=300)[0]
    assert full.shape[0] == 10


def test_conf_threshold_is_strict() -> None:
    boxes = [[20, 20, 10, 10], [60, 60, 10, 10], [100, 100, 10, 10]]
    out, idx = non_max_suppression(_pred(boxes, [0, 1, 2], [0.3, 0.5, 0.7]), conf_thres=0.5, return_indices=True)
    assert idx[0].tolist() == [2]  # 0.5 is not > 0.5


def test_max_nms_keeps_most_confident_candidates() -> None:
    boxes = [[20.0 + 30 * k, 20, 10, 10] for k in range(6)]
    conf = [0.2, 0.9, 0.4, 0.8, 0.3, 0.7]
    _, idx = non_max_suppression(_pred(boxes, [0] * 6, conf), max_nms=3, return_indices=True)
    assert idx[0].tolist() == [1, 3, 5]


def test_empty_inputs() -> None:
    out, idx = non_max_suppression(torch.zeros(2, 84, 50), return_indices=True)  # all scores 0
    assert [o.shape for o in out] == [(0, 6), (0, 6)]
    assert [i.numel() for i in idx] == [0, 0]
    out = non_max_suppression(torch.zeros(1, 84, 0))
    assert out[0].shape == (0, 6)


def test_bad_input_raises() -> None:
    with pytest.raises(ArchpruneError):
        non_max_suppression(torch.zeros(84, 100))
    with pytest.raises(ArchpruneError):
        non_max_suppression(torch.zeros(1, 84, 10), iou_thres=1.5)


def test_xywh2xyxy() -> None:
    x = torch.tensor([[10.0, 20.0, 4.0, 6.0]])
    assert xywh2xyxy(x).tolist() == [[8.0, 17.0, 12.0, 23.0]]


def test_scale_boxes_inverts_letterbox() -> None:
    # original 480x640 (h, w) letterboxed to 640x640: ratio 1, pad top 80; then to 320: ratio 0.5, pad 40
    orig_shape = (480, 640)
    ratio, pad = 0.5, (0.0, 40.0)
    orig = torch.tensor([[100.0, 50.0, 300.0, 400.0, 0.9, 3.0], [0.0, 0.0, 640.0, 480.0, 0.5, 1.0]])
    lb = orig.clone()
    lb[:, [0, 2]] = orig[:, [0, 2]] * ratio + pad[0]
    lb[:, [1, 3]] = orig[:, [1, 3]] * ratio + pad[1]
    back = scale_boxes_to_original(lb, ratio, pad, orig_shape)
    torch.testing.assert_close(back, orig)
    assert torch.equal(lb[:, 4:], back[:, 4:])  # extra columns untouched


def test_scale_boxes_clips_to_image() -> None:
    boxes = torch.tensor([[-10.0, 30.0, 400.0, 400.0]])
    back = scale_boxes_to_original(boxes, 0.5, (0.0, 40.0), (480, 640))
    assert back.tolist() == [[0.0, 0.0, 640.0, 480.0]]
