"""Runs a model's kernels lowered to CPU loops in-process (llvmlite MCJIT): the test harness for
the GPU kernels' arithmetic. Buffers and launch order follow the device plan exactly."""
from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
import numpy as np

from ..llvm.machine import optimize, target_machine
from . import cpu_loops
from .kir import Kernel
from .plan import BufferPlan

LAUNCH = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)


class EmulatedDevice:
    def __init__(self, kernels: list[Kernel], plan: BufferPlan, weights: bytes) -> None:
        tm = target_machine(llvm.get_process_triple(), llvm.get_host_cpu_name(),
                            llvm.get_host_cpu_features().flatten(), jit=True)
        self.module = optimize(cpu_loops.module_ir(kernels, llvm.get_process_triple()), tm)
        self.engine = llvm.create_mcjit_compiler(self.module, tm)
        self.engine.finalize_object()
        self.launches = [(LAUNCH(self.engine.get_function_address(k.name)), k.grid) for k in kernels]
        self.plan = plan
        self.weights = np.frombuffer(weights, np.uint8).copy()
        self.act = np.zeros(plan.activation_bytes + 64, np.uint8)

    def run(self, inputs: list[np.ndarray], outputs: list[tuple[tuple[int, ...], np.dtype]]) -> list[np.ndarray]:
        for x, offset in zip(inputs, self.plan.inputs):
            raw = np.ascontiguousarray(x).view(np.uint8).ravel()
            self.act[offset:offset + raw.size] = raw
        w, a = self.weights.ctypes.data, self.act.ctypes.data
        for fn, grid in self.launches:
            fn(w, a, 0, grid)
        out = []
        for (shape, dtype), offset in zip(outputs, self.plan.outputs):
            n = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
            out.append(self.act[offset:offset + n].view(dtype).reshape(shape).copy())
        return out
