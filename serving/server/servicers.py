"""The gRPC servicers: TF Serving's PredictionService and ModelService over the served version.

RequestHandler holds the request semantics shared with the REST front end; the servicers turn its
ServingErrors into gRPC status codes, so a bad request fails alone while the server keeps serving.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from emopy.serving.server.loader import ModelVersions
from emopy.serving.server.servable import ServingError
from emopy.serving.server.signatures import classify_on, metadata_of, predict_on

logger = logging.getLogger(__name__)


class RequestHandler:
    """TF Serving's request semantics on protos, shared by the gRPC services and the REST front end."""

    def __init__(self, versions: ModelVersions, *, max_batch_size: int):
        self.versions = versions
        self.max_batch_size = max_batch_size

    def predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        return predict_on(self.versions.resolve(request.model_spec), request, max_batch_size=self.max_batch_size)

    def classify(self, request: classification_pb2.ClassificationRequest) -> classification_pb2.ClassificationResponse:
        return classify_on(self.versions.resolve(request.model_spec), request, max_batch_size=self.max_batch_size)

    def get_model_metadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest
                           ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        return metadata_of(self.versions.resolve(request.model_spec), request)

    def get_model_status(self, request: get_model_status_pb2.GetModelStatusRequest
                         ) -> get_model_status_pb2.GetModelStatusResponse:
        name = request.model_spec.name
        statuses = self.versions.statuses() if name == self.versions.model_name else []
        if request.model_spec.HasField("version"):
            statuses = [status for status in statuses if status.version == request.model_spec.version.value]
            if not statuses:
                raise ServingError(grpc.StatusCode.NOT_FOUND,
                                   f"Could not find version {request.model_spec.version.value} of model {name}")
        if not statuses:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}")
        response = get_model_status_pb2.GetModelStatusResponse()
        for status in statuses:
            entry = response.model_version_status.add(version=status.version, state=status.state)
            entry.status.error_code = status.error_code
            entry.status.error_message = status.error_message
        return response


def _answer(context: grpc.ServicerContext, method: str, handle: Callable[[], Any]) -> Any:
    try:
        return handle()
    except ServingError as error:
        failure = error
    except Exception as error:  # a bug must cost one request, not the server
        logger.exception("%s failed", method)
        failure = ServingError(grpc.StatusCode.INTERNAL, f"{method}: {type(error).__name__}: {error}")
    context.abort(failure.code, failure.message)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """TF Serving's PredictionService: Predict, Classify, GetModelMetadata; Regress and MultiInference UNIMPLEMENTED."""

    def __init__(self, handler: RequestHandler):
        self.handler = handler

    def Predict(self, request, context):
        return _answer(context, "Predict", lambda: self.handler.predict(request))

    def Classify(self, request, context):
        return _answer(context, "Classify", lambda: self.handler.classify(request))

    def GetModelMetadata(self, request, context):
        return _answer(context, "GetModelMetadata", lambda: self.handler.get_model_metadata(request))

    def Regress(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Regress is not supported by emopy's local server")

    def MultiInference(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "MultiInference is not supported by emopy's local server")


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """TF Serving's ModelService: GetModelStatus; config reloads answer UNIMPLEMENTED."""

    def __init__(self, handler: RequestHandler):
        self.handler = handler

    def GetModelStatus(self, request, context):
        return _answer(context, "GetModelStatus", lambda: self.handler.get_model_status(request))

    def HandleReloadConfigRequest(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      "HandleReloadConfigRequest is not supported: this server serves one model from one base path")
