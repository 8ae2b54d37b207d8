"""TF Serving's Predict, Classify and GetModelMetadata on protos, against one loaded model version.

Checks requests against a version's signatures and runs them; the gRPC services, the REST front end and
the warmup replay all go through here.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import classification_pb2, get_model_metadata_pb2, predict_pb2

from emopy.serving.layout import CLASSIFY_METHOD
from emopy.serving.server.servable import GRPC_CODE_BY_NUMBER, ServableVersion, ServingError, Signature

DEFAULT_SIGNATURE_NAME = "serving_default"
PREDICT_METHOD_NAME = "tensorflow/serving/predict"
CLASSIFY_OUTPUT_CLASSES, CLASSIFY_OUTPUT_SCORES = "classes", "scores"
SIGNATURE_DEF_FIELD = "signature_def"


def _shape_text(shape: tf.TensorShape | Sequence[int]) -> str:
    if isinstance(shape, tf.TensorShape) and shape.rank is None:
        return "<unknown rank>"
    return "[" + ", ".join("-1" if dim is None else str(dim) for dim in list(shape)) + "]"


def _op_error_summary(message: str) -> str:
    # TensorFlow's runtime errors carry graph locations and stack-trace placeholders; clients need the cause.
    noise = ("Graph execution error", "Detected at node", "<stack traces unavailable>")
    lines = [line.strip() for line in message.splitlines()]
    kept = [line for line in lines if line and not line.startswith(noise) and not line.startswith("[[")]
    summary = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", " ".join(kept))
    return re.sub(r"\s*\[Op:[^\]]*\]\s*$", "", summary) or message


def find_signature(servable: ServableVersion, signature_name: str) -> Signature:
    name = signature_name or DEFAULT_SIGNATURE_NAME
    if name not in servable.signatures:
        raise ServingError(grpc.StatusCode.NOT_FOUND,
                           f"Serving signature name: \"{name}\" not found in signature def. "
                           f"Signatures of version {servable.version}: {sorted(servable.signatures)}")
    return servable.signatures[name]


def check_inputs(signature: Signature, inputs: Mapping[str, np.ndarray], *, max_batch_size: int) -> None:
    """Names, shapes and batch sizes against the signature (dtypes are checked on conversion); raises ServingError."""
    missing = sorted(set(signature.inputs) - set(inputs))
    extra = sorted(set(inputs) - set(signature.inputs))
    if missing or extra:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"inputs do not match signature '{signature.name}' "
                           f"(expects {sorted(signature.inputs)}): missing {missing}, unexpected {extra}")
    batch_sizes = {}
    for name, array in inputs.items():
        spec = signature.inputs[name]
        if not spec.shape.is_compatible_with(array.shape):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"input '{name}' has shape {_shape_text(array.shape)} but signature "
                               f"'{signature.name}' expects {_shape_text(spec.shape)}")
        if spec.shape.rank and spec.shape[0] is None:
            batch_sizes[name] = array.shape[0]
    if len(set(batch_sizes.values())) > 1:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"inputs of signature '{signature.name}' have different batch sizes: {batch_sizes}")
    if batch_sizes and max(batch_sizes.values()) > max_batch_size:
        raise ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                           f"batch of {max(batch_sizes.values())} exceeds this server's maximum of {max_batch_size}")


def run_signature(signature: Signature, inputs: Mapping[str, np.ndarray], *,
                  max_batch_size: int) -> dict[str, np.ndarray]:
    """Checks the inputs, runs the signature and returns its outputs as numpy arrays."""
    check_inputs(signature, inputs, max_batch_size=max_batch_size)
    try:
        arrays = {name: np.asarray(array, dtype=signature.inputs[name].dtype.as_numpy_dtype)
                  for name, array in inputs.items()}
        return dict(signature.function(**arrays))
    except tf.errors.OpError as error:
        # E.g. bytes that are not an image fail in decode_image with InvalidArgument; keep the model's code.
        code = GRPC_CODE_BY_NUMBER.get(error.error_code, grpc.StatusCode.UNKNOWN)
        raise ServingError(code, f"signature '{signature.name}' rejected its inputs "
                                 f"({', '.join(sorted(inputs))}): {_op_error_summary(error.message)}") from error
    except (TypeError, ValueError) as error:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"signature '{signature.name}' cannot take these inputs: {error}") from error


def tensor_proto_to_array(name: str, proto, expected: tf.TensorSpec, signature_name: str) -> np.ndarray:
    """A request TensorProto as numpy, refusing a dtype other than the signature's before decoding it."""
    if proto.dtype != expected.dtype.as_datatype_enum:
        try:
            sent = tf.as_dtype(proto.dtype).name
        except TypeError:
            sent = f"<invalid dtype enum {proto.dtype}>"
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"input '{name}' has dtype {sent} but signature '{signature_name}' "
                           f"expects {expected.dtype.name}")
    try:
        return tf.make_ndarray(proto)
    except Exception as error:  # malformed content (sizes that disagree with the shape, ...)
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"input '{name}' is not a valid tensor: {error}") from error


def predict_on(servable: ServableVersion, request: predict_pb2.PredictRequest, *,
               max_batch_size: int) -> predict_pb2.PredictResponse:
    """TF Serving's Predict against one loaded version."""
    signature = find_signature(servable, request.model_spec.signature_name)
    unknown_outputs = sorted(set(request.output_filter) - set(signature.outputs))
    if unknown_outputs:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"output tensor alias not found in signature '{signature.name}': {unknown_outputs}; "
                           f"outputs are {sorted(signature.outputs)}")
    inputs = {}
    for name, proto in request.inputs.items():
        if name in signature.inputs:  # unexpected names are reported by check_inputs together with missing ones
            inputs[name] = tensor_proto_to_array(name, proto, signature.inputs[name], signature.name)
        else:
            inputs[name] = np.empty(0)
    outputs = run_signature(signature, inputs, max_batch_size=max_batch_size)
    wanted = list(request.output_filter) or list(outputs)
    response = predict_pb2.PredictResponse()
    _fill_model_spec(response.model_spec, servable, signature.name)
    for name in wanted:
        response.outputs[name].CopyFrom(tf.make_tensor_proto(outputs[name]))
    return response


def serialized_examples(model_input) -> list[bytes]:
    """tf.Example protos of a tensorflow.serving.Input, serialized; context features merged into each."""
    kind = model_input.WhichOneof("kind")
    if kind == "example_list":
        examples = list(model_input.example_list.examples)
    elif kind == "example_list_with_context":
        context = model_input.example_list_with_context.context
        examples = []
        for example in model_input.example_list_with_context.examples:
            merged = example_pb2.Example()
            merged.CopyFrom(context)
            for key, feature in example.features.feature.items():  # the example's own value wins
                merged.features.feature[key].CopyFrom(feature)
            examples.append(merged)
    else:
        examples = []
    if not examples:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Input is empty: no examples to classify")
    return [example.SerializeToString() for example in examples]


def classify_on(servable: ServableVersion, request: classification_pb2.ClassificationRequest, *,
                max_batch_size: int) -> classification_pb2.ClassificationResponse:
    """TF Serving's Classify against one loaded version: serialized tf.Examples into a classify signature."""
    signature = find_signature(servable, request.model_spec.signature_name)
    if signature.method_name != CLASSIFY_METHOD:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"Expected classification signature method_name to be {CLASSIFY_METHOD}. "
                           f"Was: {signature.method_name} (signature '{signature.name}')")
    if len(signature.inputs) != 1:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"classification signature '{signature.name}' must have exactly one input")
    (input_name,) = signature.inputs
    serialized = np.array(serialized_examples(request.input), dtype=object)
    outputs = run_signature(signature, {input_name: serialized}, max_batch_size=max_batch_size)
    classes, scores = outputs.get(CLASSIFY_OUTPUT_CLASSES), outputs.get(CLASSIFY_OUTPUT_SCORES)
    if classes is None and scores is None:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"classification signature '{signature.name}' has neither 'classes' nor 'scores' output")
    for output in (classes, scores):
        if output is not None and (output.ndim != 2 or output.shape[0] != len(serialized)):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"classification outputs must be [batch, classes]; got {list(output.shape)}")
    response = classification_pb2.ClassificationResponse()
    _fill_model_spec(response.model_spec, servable, signature.name)
    for row in range(len(serialized)):
        classifications = response.result.classifications.add()
        width = (classes if classes is not None else scores).shape[1]
        for column in range(width):
            entry = classifications.classes.add()
            if classes is not None:
                entry.label = classes[row, column].decode("utf-8", "replace")
            if scores is not None:
                entry.score = float(scores[row, column])
    return response


def metadata_of(servable: ServableVersion,
                request: get_model_metadata_pb2.GetModelMetadataRequest) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """TF Serving's GetModelMetadata: the SignatureDefMap, packed into an Any under 'signature_def'."""
    if not request.metadata_field:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           "GetModelMetadataRequest must specify at least one metadata_field")
    for field in request.metadata_field:
        if field != SIGNATURE_DEF_FIELD:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Metadata field {field} is not supported")
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    _fill_model_spec(response.model_spec, servable, "")
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for name, signature_def in servable.meta_graph.signature_def.items():
        signature_map.signature_def[name].CopyFrom(signature_def)
    response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
    return response


def _fill_model_spec(model_spec, servable: ServableVersion, signature_name: str) -> None:
    model_spec.name = servable.model_name
    model_spec.version.value = servable.version
    model_spec.signature_name = signature_name
