# streamproc worker image. Build: docker build -t streamproc .
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml constraints.txt README.md topics.yaml ./
COPY streamproc ./streamproc
RUN pip install -c constraints.txt .
RUN useradd --create-home streamproc && mkdir -p /data && chown streamproc /data
USER streamproc
ENV STREAMPROC_DATA_DIR=/data STREAMPROC_TOPICS_FILE=/app/topics.yaml STREAMPROC_WEB_HOST=0.0.0.0
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:6066/health')" || exit 1
ENTRYPOINT ["streamproc"]
CMD ["worker"]
