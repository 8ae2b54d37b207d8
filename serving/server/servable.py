"""What the local server serves: one loaded model version, its signatures and status, and how requests fail.

The types every other part of serving/server/ shares; it imports none of them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Mapping

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

# TensorFlow's error codes are numerically gRPC's, so a model's own error keeps its code in the answer.
GRPC_CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


class ServingError(Exception):
    """A request that fails with a gRPC status code, as TF Serving would answer it."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


@dataclasses.dataclass(frozen=True)
class Signature:
    """One callable SignatureDef: its TensorSpecs by input/output key, and the function that runs it."""

    name: str
    method_name: str
    inputs: Mapping[str, tf.TensorSpec]
    outputs: Mapping[str, tf.TensorSpec]
    function: Callable[..., Mapping[str, np.ndarray]]  # numpy inputs by key in, numpy outputs by key out


@dataclasses.dataclass(frozen=True)
class ServableVersion:
    """One loaded version of the model: what requests run against, swapped as a whole on reload."""

    model_name: str
    version: int
    path: Path
    meta_graph: meta_graph_pb2.MetaGraphDef  # signature_defs as saved, for GetModelMetadata
    signatures: Mapping[str, Signature]
    # The Session the version's serve MetaGraph is loaded into, which its signatures run in.
    session: tf.compat.v1.Session


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    """What GetModelStatus reports for one version."""

    version: int
    state: int  # get_model_status_pb2.ModelVersionStatus.State
    error_code: int = 0  # tensorflow.error.Code, numerically the gRPC code
    error_message: str = ""
