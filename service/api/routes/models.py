"""GET /v1/models and /v1/models/{model}: what OpenAI clients and chat UIs (Open WebUI,
LibreChat, Chatbox) ask first, to offer a model to pick.

There is one: ``newsdesk``, the model id of POST /v1/chat/completions. The chat endpoint
answers whatever ``model`` a client sends (SDK defaults such as ``gpt-4o-mini`` included)
the same way, but only ``newsdesk`` is listed, and any other id is OpenAI's 404
``model_not_found`` here.
"""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.api.errors import ErrorBody
from service.api.routes.chat import openai_error
from service.api.schemas import ModelCard, ModelList, OpenAIErrorBody

MODEL_ID = "newsdesk"
OWNER = "newsdesk"
# OpenAI's `created` is when a model was made available; here, when this process
# started serving it.
SERVED_SINCE = int(time.time())

router = APIRouter(tags=["chat"])
ERRORS = {code: {"model": ErrorBody} for code in (401, 413, 422, 429)}


def model_card() -> ModelCard:
    return ModelCard(id=MODEL_ID, created=SERVED_SINCE, owned_by=OWNER)


@router.get(
    "/v1/models",
    response_model=ModelList,
    responses=ERRORS,
    summary="The models the OpenAI-compatible chat endpoint serves (OpenAI's list shape)",
)
def list_models() -> ModelList:
    return ModelList(data=[model_card()])


@router.get(
    "/v1/models/{model}",
    response_model=ModelCard,
    responses={
        404: {"model": OpenAIErrorBody, "description": "OpenAI's model_not_found"},
        **ERRORS,
    },
    summary="One model, in OpenAI's shape; 404 model_not_found for any id but newsdesk",
)
def retrieve_model(model: str) -> ModelCard | JSONResponse:
    if model != MODEL_ID:
        return openai_error(
            404,
            "model_not_found",
            f"The model '{model}' does not exist. This server has one model: '{MODEL_ID}'.",
            "model",
        )
    return model_card()
