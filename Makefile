# make run:  Orthanc on orthanc.json with the plugin, in the foreground (Debian 12 or 13).
# make test: install what is missing, then unit tests, and the integration tests of every leg that can
#            run, the legs side by side.
#            PYTEST_ARGS="-k jobs -x" passes options; ADVANCED_REST_LEGS=bookworm picks legs.
SHELL := /bin/bash
# The interpreter Orthanc's Python plugin embeds on Debian 12 and 13: venvs must come from it.
HOST_PYTHON := /usr/bin/python3
PYTEST_ARGS ?=
export PYTEST_ARGS

.PHONY: run test test-against host-packages test-packages plugin-venv test-venv trixie forky test-setup docker-image docker-leg

host-packages:
	scripts/apt-install.sh orthanc orthanc-python python3-venv

# postgresql (15) and orthanc-postgresql (4.0): the cluster tests start their own server (tests/integration/postgres.py);
# openssl: a self-signed certificate for the webhook sender's TLS test.
# ffmpeg: the create-dicom video tests make their MP4 and MPEG-2 files with it (never used at run time).
# chromium and chromium-driver: the jobs page's tests drive a real browser, headless (tests/integration/browser.py).
test-packages: host-packages
	scripts/apt-install.sh debootstrap dicom3tools prometheus postgresql orthanc-postgresql openssl ffmpeg chromium chromium-driver

plugin-venv: host-packages
	scripts/make-venv.sh .venv/plugin plugin/requirements.txt $(HOST_PYTHON)

test-venv: host-packages
	scripts/make-venv.sh .venv/test tests/requirements.txt $(HOST_PYTHON)

# The chroots of the trixie (Debian 13) and forky (testing) legs, cached in /var/cache/advanced-rest.
# One that cannot be built is not fatal here: its leg is skipped with the reason.
trixie forky: test-packages
	scripts/build-chroot.sh $@ || echo "==> $@ leg unavailable: its tests will be skipped"

# The docker leg runs wherever a Docker engine answers; elsewhere it is skipped with the reason.
# (the leg itself builds docker/Dockerfile with the docker SDK on the base made here, and its cluster
# tests docker/postgres and docker/nginx on the Debian 12 base that docker-postgres.sh imports)
docker-leg: test-venv forky
	@if command -v docker >/dev/null && docker info >/dev/null 2>&1; then scripts/docker-base.sh && \
	  { scripts/docker-postgres.sh || echo "==> no PostgreSQL image: the docker leg's cluster tests will be skipped"; }; \
	else echo "==> no Docker engine: the docker leg will be skipped"; fi

test-setup: test-packages plugin-venv test-venv trixie forky docker-leg

run: plugin-venv
	scripts/run-orthanc.sh orthanc.json

# Unit tests once and one pytest per leg, side by side (scripts/run-tests.py): logs and JUnit reports
# in build/test-results/, one line per leg at the end; fails if any leg failed.
test: test-setup
	.venv/test/bin/python scripts/run-tests.py

# The image of docker/Dockerfile on the local base (a forky rootfs brought in with docker import,
# since no registry can be reached here); elsewhere: docker compose -f docker/docker-compose.yml up --build
docker-image: test-venv forky
	scripts/docker-base.sh
	docker build -f docker/Dockerfile --build-arg BASE_IMAGE=advanced-rest/forky-base:latest -t advanced-rest:local .

# Your own Orthanc with the plugin: make test-against URL=http://host:8042 [USER=... PASSWORD=...]
# Runs what needs no server of its own; deletes the patients the run creates.
test-against: test-venv
	@test -n "$(URL)" || { echo "usage: make test-against URL=http://host:8042 [USER=u PASSWORD=p]"; exit 2; }
	ADVANCED_REST_URL_USER="$(USER)" ADVANCED_REST_URL_PASSWORD="$(PASSWORD)" \
	  .venv/test/bin/python -m pytest tests/integration --legs "url=$(URL)" $(PYTEST_ARGS)
