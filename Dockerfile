# aws-credentials-pipe. Multi-stage: the final image adds one layer, a virtual environment
# holding the runtime requirements and the pipe, and nothing else (no pip, setuptools,
# caches or tests).
#
# Build (BuildKit): DOCKER_BUILDKIT=1 docker build -t aws-credentials-pipe .
# Behind a TLS-inspecting proxy, pass its CA bundle to pip as a secret:
#   --secret id=pip_ca,src=/etc/ssl/certs/ca-certificates.crt
ARG BASE_IMAGE=python:3.13-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/pipe
COPY requirements.txt /src/requirements.txt
RUN --mount=type=secret,id=pip_ca,required=false \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi; \
    /opt/pipe/bin/python -m pip install --no-deps --no-compile -r /src/requirements.txt
COPY pipe /src/pipe
COPY pipe/entrypoint.py /opt/pipe/bin/entrypoint.py
# The pipe goes straight into site-packages (no build backend needed); then prune:
# botocore keeps only the service models the pipe calls (sts, iam, ssm, secretsmanager, and for
# the audit organizations and sesv2),
# pip/setuptools and every test suite go, and everything is compiled once so that no
# run compiles at start-up. cffi and pycparser stay installed, whole: cryptography (the
# check's RS256, through PyJWT) declares cffi and loads its compiled _cffi_backend at run time,
# and cffi declares pycparser. Deleting their files by hand (1.5 MB) would leave metadata that
# lists packages the image does not hold, which SBOM and scanner tools would believe. Their
# Python modules are never imported at run time, so they are not compiled.
# The last lines fail the build when a .pth file would need site (the entry point runs without
# it), or when an import the pipe needs, cryptography's included, breaks with the sys.path the
# entry point makes.
RUN set -eu; \
    site=$(/opt/pipe/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
    cp -r /src/pipe "$site/pipe"; \
    for service in "$site"/botocore/data/*/; do \
      case "$(basename "$service")" in sts|iam|ssm|secretsmanager|organizations|sesv2) ;; *) rm -rf "$service" ;; esac; \
    done; \
    /opt/pipe/bin/python -c "import json, sys; p = sys.argv[1]; d = json.load(open(p)); keep = {'sts', 'iam', 'ssm', 'secretsmanager', 'organizations', 'email'}; [q.__setitem__('services', {k: v for k, v in q['services'].items() if k in keep}) for q in d['partitions']]; json.dump(d, open(p, 'w'), separators=(',', ':'))" "$site/botocore/data/endpoints.json"; \
    /opt/pipe/bin/python -m pip uninstall -q -y pip setuptools 2>/dev/null || true; \
    rm -rf "$site"/pip "$site"/pip-* "$site"/setuptools* "$site"/_distutils_hack "$site"/distutils-precedence.pth \
           "$site"/pkg_resources /opt/pipe/bin/pip* /opt/pipe/bin/activate* /opt/pipe/bin/Activate.ps1; \
    find /opt/pipe -depth -type d \( -name tests -o -name test -o -name __pycache__ \) -exec rm -rf {} +; \
    /opt/pipe/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash -x '/(cffi|pycparser)/' "$site" >/dev/null; \
    if find /opt/pipe -name '*.pth' | grep .; then echo 'a .pth file: the entry point runs without site (-S)' >&2; exit 1; fi; \
    /opt/pipe/bin/python -I -S -c "import runpy, sys; runpy.run_path('/opt/pipe/bin/entrypoint.py'); assert sys.path[-1] == sys.argv[1], sys.path; import pipe.__main__, pipe.actions.assume, pipe.actions.check, pipe.actions.rotate, pipe.actions.sync, pipe.actions.audit, pipe.aws, pipe.sts, pipe.handoff, bitbucket_pipes_toolkit, botocore.session, jwt.algorithms; assert jwt.algorithms.has_crypto, 'cryptography did not load'" "$site"

FROM ${BASE_IMAGE}
COPY --from=build /opt/pipe /opt/pipe
# -I: isolated mode. The working directory is the user's clone; a pipe/ folder there (any
# clone of a pipe repository has one) must not shadow the installed pipe. -S: without site
# (pipe/entrypoint.py, copied there, puts the one directory site would add on sys.path, and says why).
ENTRYPOINT ["/opt/pipe/bin/python", "-I", "-S", "/opt/pipe/bin/entrypoint.py"]
