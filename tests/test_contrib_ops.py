"""onnxruntime's com.microsoft contrib ops: in models its transformer optimizer really writes, and
one node per op and attribute on cpu, the GPU kernel description and StableHLO, against onnxruntime."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import onnx_models
import pjrt_harness
from gpu_harness import check_gpu

RNG = np.random.default_rng(1414)
MS = "com.microsoft"


def rand(*shape: int, lo: float = -2.0, hi: float = 2.0) -> np.ndarray:
    return RNG.uniform(lo, hi, shape).astype(np.float32)


def contrib_node(op: str, inputs: list[tuple[str, np.ndarray | None, bool]], n_out: int = 1,
                 outputs: list[str] | None = None, domain: str = MS, **attrs) -> onnx.ModelProto:
    """One com.microsoft node; an input with array None is left out (empty name)."""
    inits = [numpy_helper.from_array(a, n) for n, a, init in inputs if a is not None and init]
    ins = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
           for n, a, init in inputs if a is not None and not init]
    outs = outputs or [f"y{i}" for i in range(n_out)]
    node = helper.make_node(op, [n if a is not None else "" for n, a, _ in inputs], outs, name="the_node",
                            domain=domain, **attrs)
    graph = helper.make_graph([node], op.lower(), ins,
                              [helper.make_empty_tensor_value_info(o) for o in outs if o], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])
    m.ir_version = 8
    return m


H = 16
CASES = {
    "gelu": ("Gelu", [("x", rand(3, 17, lo=-6, hi=6), 0)], {}),
    "fast_gelu": ("FastGelu", [("x", rand(3, 17, lo=-6, hi=6), 0)], {}),
    "fast_gelu_bias": ("FastGelu", [("x", rand(3, 17, lo=-6, hi=6), 0), ("b", rand(17), 1)], {}),
    "bias_gelu": ("BiasGelu", [("x", rand(2, 3, 17, lo=-6, hi=6), 0), ("b", rand(17), 1)], {}),
    "quick_gelu": ("QuickGelu", [("x", rand(3, 17, lo=-6, hi=6), 0)], dict(alpha=1.5)),
    "fused_matmul": ("FusedMatMul", [("a", rand(2, 4, 5), 0), ("b", rand(5, 3), 1)], dict(alpha=0.5)),
    "fused_matmul_trans": ("FusedMatMul", [("a", rand(2, 5, 4), 0), ("b", rand(2, 3, 5), 0)],
                           dict(transA=1, transB=1, alpha=2.0)),
    "skip_layer_norm": ("SkipLayerNormalization", [("x", rand(2, 3, H), 0), ("s", rand(2, 3, H), 0),
                                                   ("g", rand(H), 1), ("beta", rand(H), 1), ("bias", rand(H), 1)],
                        dict(epsilon=1e-5)),
    "skip_layer_norm_no_beta": ("SkipLayerNormalization", [("x", rand(2, 3, H), 0), ("s", rand(2, 3, H), 0),
                                                           ("g", rand(H), 1)], {}),
    "skip_simplified_norm": ("SkipSimplifiedLayerNormalization", [("x", rand(2, 3, H), 0),
                                                                  ("s", rand(2, 3, H), 0), ("g", rand(H), 1),
                                                                  ("bias", rand(H), 1)], dict(epsilon=1e-6)),
    "simplified_norm": ("SimplifiedLayerNormalization", [("x", rand(2, 3, H), 0), ("g", rand(H), 1)],
                        dict(epsilon=1e-6, axis=-1, domain="")),
}


def _case(name: str) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    op, inputs, attrs = CASES[name]
    model = contrib_node(op, [(n, a, bool(init)) for n, a, init in inputs], **attrs)
    return model, {n: a for n, a, init in inputs if not init}


def _specials(case: str) -> bool:
    """onnxruntime's FastGelu gives NaN at -inf (-inf * 0) where Gelu's limit, which kiln keeps, is 0."""
    return not case.startswith("fast_gelu")


@pytest.mark.parametrize("case", sorted(CASES))
def test_cpu(tmp_path, case):
    onnx_models.check(*_case(case), tmp_path, specials=_specials(case))


@pytest.mark.parametrize("case", sorted(CASES))
def test_gpu_description(tmp_path, case):
    check_gpu(*_case(case), tmp_path, specials=_specials(case))


def test_skip_layer_norm_sum_and_stats(tmp_path):
    """The input+skip+bias sum (output 3) and mean / inv_std_var (outputs 1, 2) when read."""
    model = contrib_node("SkipLayerNormalization", [("x", rand(2, 3, H), False), ("s", rand(2, 3, H), False),
                                                    ("g", rand(H), True), ("beta", rand(H), True),
                                                    ("bias", rand(H), True)],
                         outputs=["y", "", "", "sum"], epsilon=1e-5)
    onnx_models.check(model, {"x": rand(2, 3, H), "s": rand(2, 3, H)}, tmp_path)


def test_bias_add(tmp_path):
    """onnxruntime runs BiasAdd on CUDA only: checked against its documented x + bias + skip."""
    x, bias, skip = rand(2, 3, 8), rand(8), rand(2, 3, 8)
    model = contrib_node("BiasAdd", [("x", x, False), ("b", bias, True), ("s", skip, False)])
    got = onnx_models.kiln_run(model, {"x": x, "s": skip}, tmp_path)[0]
    np.testing.assert_allclose(got, x + bias + skip, rtol=1e-6)


def test_refused_attribute_is_one_line(tmp_path):
    model = contrib_node("FusedMatMul", [("a", rand(2, 4, 5), False), ("b", rand(2, 5, 3), True)], transBatchA=1)
    with pytest.raises(Exception) as e:
        onnx_models.kiln_jit(model, tmp_path)
    assert str(e.value) == "com.microsoft.FusedMatMul node the_node: transBatchA/transBatchB is not supported"


@pytest.mark.e2e
@pytest.mark.parametrize("case", sorted(CASES))
def test_stablehlo(pjrt_launcher, tmp_path, case):
    model, feeds = _case(case)
    pjrt_harness.check(pjrt_launcher, model, feeds, tmp_path)


@pytest.fixture(scope="module")
def pjrt_launcher(tmp_path_factory):
    return pjrt_harness.link_launcher(tmp_path_factory.mktemp("pjrt-launcher"))
