"""The CPU backend's code: one module per distinct kernel, shared by nodes with the same code, and
the same object bytes whether the modules are optimised in one process or several."""
from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
from elftools.elf.elffile import ELFFile

import onnx_models as M
from kiln.compiler import CompileError, driver
from kiln.compiler.backend.cpu.objfile import emit_object, machine, object_output
from kiln.compiler.backend.llvm import modules
from kiln.compiler.backend.llvm.modules import Stream, optimize_all


def _compiled(tmp_path, model: onnx.ModelProto):
    onnx.save(model, tmp_path / "m.onnx")
    return driver.compile(tmp_path / "m.onnx")


def test_object_is_the_same_on_one_core_or_several(tmp_path):
    code = _compiled(tmp_path, M.mnist_cnn()).code
    names = [k.name for k in code.kernels]
    output = object_output(names)
    serial = optimize_all(code.modules, machine(code.host), workers=1, output=output)
    parallel = optimize_all(code.modules, machine(code.host), workers=2, min_bytes=0, output=output)
    assert [o.code for o in serial] == [o.code for o in parallel]
    obj = emit_object(code.modules, names, code.host, serial)
    assert obj == emit_object(code.modules, names, code.host, parallel)
    assert obj == emit_object(code.modules, names, code.host)


def test_objects_made_during_codegen_are_the_same_bytes(tmp_path, monkeypatch):
    onnx.save(M.mnist_cnn(), tmp_path / "m.onnx")
    batch = driver.compile(tmp_path / "m.onnx").code
    monkeypatch.setattr(modules, "PARALLEL_MIN_BYTES", 0)  # workers from the first kernel on
    overlapped = driver.compile(tmp_path / "m.onnx", overlap_llvm=True).code
    assert overlapped.objects is not None and overlapped.objects.threads
    assert overlapped.files() == batch.files()


def test_streamed_modules_come_back_in_the_order_added(tmp_path):
    code = _compiled(tmp_path, M.mnist_cnn()).code
    output = object_output([k.name for k in code.kernels])
    stream = Stream(machine(code.host), workers=2, min_bytes=0)
    for text in code.modules:
        stream.add(text, output=output)
    serial = optimize_all(code.modules, machine(code.host), workers=1, output=output)
    assert [o.code for o in stream.results()] == [o.code for o in serial]


def test_a_worker_reports_invalid_ir_as_a_compile_error(tmp_path):
    code = _compiled(tmp_path, M.mnist_cnn()).code
    stream = Stream(machine(code.host), workers=2, min_bytes=0)
    stream.add(code.modules[1])
    stream.add("define void @f() {\n  ret i32 0\n}\n")
    with pytest.raises(CompileError, match="generated LLVM IR is invalid"):
        stream.results()


def test_cancelled_stream_stops_its_workers(tmp_path):
    code = _compiled(tmp_path, M.mnist_cnn()).code
    stream = Stream(machine(code.host), workers=2, min_bytes=0)
    for text in code.modules * 4:
        stream.add(text)
    stream.cancel()
    assert not any(t.is_alive() for t in stream.threads)
    assert len(stream.done) < len(code.modules) * 4


def test_kernels_are_hidden_and_entries_exported(tmp_path):
    code = _compiled(tmp_path, M.mnist_cnn()).code
    obj = emit_object(code.modules, [k.name for k in code.kernels], code.host)
    symbols = {s.name: s for s in ELFFile(io.BytesIO(obj)).get_section_by_name(".symtab").iter_symbols()}
    for kernel in code.kernels:
        assert symbols[kernel.name]["st_shndx"] != "SHN_UNDEF"
        assert symbols[kernel.name]["st_other"]["visibility"] == "STV_HIDDEN"
    for entry in (v["entry"] for v in code.section["variants"]):
        assert symbols[entry]["st_other"]["visibility"] == "STV_DEFAULT"


def test_repeated_layers_share_kernels(tmp_path):
    code = _compiled(tmp_path, M.transformer(layers=3)).code
    sites = sum(len(k.nodes) for k in code.kernels)
    assert len(code.kernels) * 2 < sites
    assert max(len(k.nodes) for k in code.kernels) >= 3


def test_shared_kernels_compute_each_layer(tmp_path):
    model = M.transformer(layers=3)
    x = np.random.default_rng(0).standard_normal((1, 32, 64)).astype(np.float32)
    M.check(model, {"input": x}, tmp_path)


def test_convs_of_one_shape_share_a_kernel_wherever_their_tensors_lie(tmp_path):
    """Four same-shaped convs: from the input, between two scratch buffers both ways round, and
    into the output. GEMM kernels take each operand from a slot of its own, so one kernel (per
    CPU variant) serves all four; each layer still computes its own result."""
    b = M.Builder(0)
    h = "input"
    for _ in range(4):
        h = b.op("Relu", [b.conv(h, 16, 16, 3)])
    b.nodes.append(onnx.helper.make_node("Identity", [h], ["y"], name="out"))
    model = b.model([("input", M.F, [1, 16, 12, 12])], [("y", M.F, None)])
    code = _compiled(tmp_path, model).code
    convs = [k for k in code.kernels if k.name.endswith("_conv")]
    assert len(convs) == len(code.host.variants) and all(len(k.nodes) == 4 for k in convs)
    x = np.random.default_rng(0).standard_normal((1, 16, 12, 12)).astype(np.float32)
    M.check(model, {"input": x}, tmp_path)


def test_inspect_profile_times_every_step(tmp_path, capsys):
    from kiln.compiler.__main__ import main

    onnx.save(M.mnist_cnn(), tmp_path / "m.onnx")
    assert main(["inspect", "--profile", str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out
    for step in ("load", "pass fuse", "codegen", "optimise + object", "ld -r", "weights file", "peak RSS",
                 "slowest kernels"):
        assert step in out, out
    codegen = next(line for line in out.splitlines() if "codegen" in line).split()
    assert float(codegen[3]) > 0 and codegen[4] == "s", out  # its CPU seconds, after the wall ones


def test_data_movement_kernels_and_the_entry_get_o1_and_the_rest_o3(tmp_path):
    a, b = np.ones((2, 3, 8), np.float32), np.zeros((2, 5, 8), np.float32)
    concat = _compiled(tmp_path, M.single_op("Concat", [("a", a, False), ("b", b, False)], axis=1)).code
    assert [p.level for p in concat.passes] == [1] + [1] * len(concat.host.variants)  # the entry, a concat per variant
    code = _compiled(tmp_path, M.mnist_cnn()).code
    entry, *kernels = code.passes
    assert entry.level == 1 and {p.level for p in kernels} == {3}
    assert all(p.unroll == (not k.name.endswith("_conv")) for k, p in zip(code.kernels, kernels))
