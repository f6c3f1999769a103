"""ONNX models that attack their worker through the inputs a request chooses.

Each takes one int64 tensor ``n`` of shape [1]: small values make it answer at once, a
large one makes it spin (a Loop of ``n`` iterations) or ask for ``n`` floats of memory.
"""

import onnx
from onnx import TensorProto, helper

OPSET = [helper.make_opsetid("", 17)]


def _model(graph: onnx.GraphProto) -> bytes:
    model = helper.make_model(graph, opset_imports=OPSET)
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _io(name: str, elem: int = TensorProto.INT64) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, [1])


def spinner() -> bytes:
    """``out = n``, counted one by one: a CPU-time bomb for a large ``n``."""
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["count_in", "one"], ["count_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            _io("count_in"),
        ],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), _io("count_out")],
        [helper.make_tensor("one", TensorProto.INT64, [1], [1])],
    )
    graph = helper.make_graph(
        [
            helper.make_node("Squeeze", ["n"], ["trips"]),
            helper.make_node("Loop", ["trips", "yes", "zero"], ["out"], body=body),
        ],
        "spinner",
        [_io("n")],
        [_io("out")],
        [
            helper.make_tensor("yes", TensorProto.BOOL, [], [True]),
            helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
        ],
    )
    return _model(graph)


def hoarder() -> bytes:
    """``out = sum(ones(n))``: a memory bomb for a large ``n``."""
    graph = helper.make_graph(
        [
            helper.make_node(
                "ConstantOfShape",
                ["n"],
                ["ones"],
                value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]),
            ),
            helper.make_node("ReduceSum", ["ones"], ["out"], keepdims=1),
        ],
        "hoarder",
        [_io("n")],
        [_io("out", TensorProto.FLOAT)],
    )
    return _model(graph)
