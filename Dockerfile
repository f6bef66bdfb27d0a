# SoVITS Studio: the HTTP API (and the web UI at /ui) in a container. One file, two images:
#
#   docker build -t sovits-studio:cpu .                             # CPU torch wheels
#   docker build -t sovits-studio:cuda --build-arg VARIANT=cuda .   # CUDA torch wheels (run with --gpus all)
#
# TORCH_INDEX overrides the wheel index of either (e.g. another CUDA release:
# --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126). The CUDA wheels bring their own
# CUDA libraries, so both images start from the same Debian base; the host gives the driver.
#
# Models are not in the image: they live in the data volume (/data), fetched once with
#   docker run --rm -v studio-data:/data --entrypoint sovits-studio-download sovits-studio:cpu --required
# or copied in (an upstream GPT_SoVITS/pretrained_models/ folder works as is).
#
# Binding 0.0.0.0 needs an API key: docker run -e STUDIO_API_KEY=... -p 9880:9880 -v studio-data:/data ...

ARG PYTHON_VERSION=3.11
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------------------------------------
# build: a virtual environment with every wheel (pyopenjtalk and a few others compile here)
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS build
ARG VARIANT=cpu
ARG TORCH_INDEX=
# g++ compiles the source-only wheels (pyopenjtalk); the same package the Makefile's APT_PACKAGES lists.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends g++ \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /opt/studio
COPY requirements.txt requirements-nodeps.txt ./
# torch first, from the wheel index of the variant, at the version requirements.txt pins; the
# rest of requirements.txt then finds it installed.
RUN set -eu; \
    case "$VARIANT" in \
      cpu) index="${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}" ;; \
      cuda) index="${TORCH_INDEX:-https://download.pytorch.org/whl/cu128}" ;; \
      *) echo "VARIANT must be cpu or cuda, not $VARIANT" >&2; exit 2 ;; \
    esac; \
    pip install --upgrade "pip>=23" "setuptools<81" wheel; \
    pip install --index-url "$index" "$(grep -E '^torch==' requirements.txt)"; \
    pip install -r requirements.txt; \
    pip install --no-deps -r requirements-nodeps.txt
COPY pyproject.toml README.md webui.py ./
COPY app ./app
COPY tools ./tools
# Editable, as `make` installs it: the console commands, and the data root defaults stay beside the code.
RUN pip install --no-deps --no-build-isolation -e .

# ---------------------------------------------------------------------------------------------
# runtime: the environment and the code, the Debian packages audio and text need, a plain user
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS runtime
ARG VARIANT=cpu
# The Makefile's APT_PACKAGES without the browser-test ones (chromium, chromium-driver, fonts-noto-cjk):
# ffmpeg/sox decode audio, espeak-ng and the Open JTalk dictionary serve the text frontend,
# g++ compiles the GPT's native kernel on first use (for the CPU it runs on).
# libportaudio2: the sound devices of realtime SVC (python -m app.infer.svc_live).
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ffmpeg espeak-ng open-jtalk-mecab-naist-jdic sox g++ libportaudio2 \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin studio \
    && mkdir -p /data \
    && chown studio:studio /data
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=root:root /opt/studio /opt/studio
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    STUDIO_HOME=/data \
    OPEN_JTALK_DICT_DIR=/var/lib/mecab/dic/open-jtalk/naist-jdic
LABEL org.opencontainers.image.title="SoVITS Studio" org.opencontainers.image.variant="${VARIANT}"
WORKDIR /opt/studio
USER studio
# Weights, presets, outputs and jobs: one folder, shared by every replica that mounts it.
VOLUME ["/data"]
EXPOSE 9880
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9880/health', timeout=4)"]
ENTRYPOINT ["python", "-m", "app.api"]
CMD ["--host", "0.0.0.0", "--port", "9880"]
