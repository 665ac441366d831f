# Two images from one file.
#   docker build --target bot -t quantbot .      the bot: webhook server, planner, publisher (no torch)
#   docker build --target worker -t quantbot-worker .   a GPU build worker on NVIDIA's TensorRT-LLM release image
# The worker keeps the container's own torch, TensorRT-LLM and ModelOpt (their pins go together) and adds
# quantbot on top without touching them. It runs `quantbot worker`: it takes build tasks from the broker
# (QUANTBOT_BROKER_URL) and publishes with HF_TOKEN; compose.yaml runs bot, Redis, PostgreSQL and one worker.

FROM python:3.11-slim AS bot
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 QUANTBOT_DATA_DIR=/data
RUN useradd --create-home --uid 1000 quantbot && mkdir -p /data && chown quantbot /data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY builders ./builders
COPY state ./state
COPY templates ./templates
RUN pip install --no-cache-dir .
USER quantbot
VOLUME /data
EXPOSE 8000
ENTRYPOINT ["quantbot"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]

FROM nvcr.io/nvidia/tensorrt-llm/release:1.2.0rc5 AS worker
ENV PYTHONUNBUFFERED=1
WORKDIR /app
COPY --from=bot /app /app
RUN pip install --no-cache-dir --no-deps . \
 && pip install --no-cache-dir "huggingface_hub>=1.2,<3" "pydantic>=2.6" "gptqmodel>=7.6,<7.7" --no-deps \
 && pip install --no-cache-dir "celery[redis]>=5.4,<6" "pydantic-settings>=2.2" "click>=8.1" "jinja2>=3.1" \
    "nvidia-ml-py>=12.0" "sqlalchemy>=2.0" "httpx>=0.27" "pyyaml>=6.0"
ENV QUANTBOT_DATA_DIR=/data
VOLUME /data
ENTRYPOINT ["quantbot"]
CMD ["worker"]
