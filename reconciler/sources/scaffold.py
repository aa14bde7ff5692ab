"""The files `fota init` writes: a desired-state repository that `fota validate` accepts
and `fota serve --repo` runs, with its CI files.

Plain text templates, one per path; `{collection}` is the first collection's directory.
docs/ci.md shows the CI files verbatim (a test holds the two equal, and another runs the
commands they contain against a repository made by `fota init`). Used by
`reconciler.sources.init_cmd`.
"""

from __future__ import annotations

COLLECTION_YAML = """\
# One collection: its devices, their firmware images and the rollout guards.
# A change reaches the devices when it is merged; rolling back is `git revert`.
name: {collection}
firmware:
  # disabled: touch nothing (the start, until images and devices are in);
  # collection: every device runs the target below; device: each its own target.
  management: disabled
  # target: "1.0.0"        # a version from images.yaml (quoted), once one is published
rollout:
  maxConcurrent: 10         # at most this many devices updating at once
  failureThreshold: "10%"   # no new starts once this share (or a count) has failed
"""

IMAGES_YAML = """\
# Firmware images, added by the firmware build's CI (see .github/workflows or
# .gitlab-ci.yml): fota publish IMAGE --collection {collection} --version V --commit
images: []
"""

DEVICES_YAML = """\
# One device per line: the LwM2M endpoint name it registers with, and optionally a
# deviceId, a target (for `management: device`) and tags. For example:
# - {{"endpoint": "urn:imei:352656100000001", "tags": {{"site": "oslo"}}}}
devices: []
"""

README = """\
# Desired state for fota

This repository says which firmware every device runs. `fota serve --repo .` (or its
URL) drives the devices there over LwM2M; nothing else writes to them.

Next steps:

1. Declare devices in `manifests/{collection}/devices/devices.yaml` (one per line).
2. Publish an image: `fota publish build/app.bin --collection {collection} --version 1.0.0 --commit`
   (in the firmware build's CI, see `.github/workflows/fota.yml` or `.gitlab-ci.yml`).
3. Set `firmware.target: "1.0.0"` and `management: collection` in
   `manifests/{collection}/collection.yaml`, in a pull request: CI runs `fota validate`.
4. Run `fota serve --repo .` and point the devices at its CoAP port (5683).

`fota validate` checks everything at once; `pre-commit install` runs it on every commit.
"""

GITHUB_WORKFLOW = """\
# Every pull request that touches the desired state is validated, with the problems
# shown on the changed lines, and gets a comment saying what it will do to the fleet.
name: fota
on:
  pull_request:
    paths: ["manifests/**", "images/**"]
permissions:
  contents: read
  pull-requests: write
jobs:
  validate:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0  # fota plan reads the base revision from git
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - run: pip install fota-gitops
      - run: fota validate --format github
      # Add --against <your fota serve API URL> (and FOTA_API_TOKEN) to count live devices.
      - run: fota plan --base "origin/$GITHUB_BASE_REF" --format markdown > plan.md
      - run: gh pr comment "$PR" --body-file plan.md
        env:
          GH_TOKEN: ${{{{ github.token }}}}
          PR: ${{{{ github.event.pull_request.number }}}}
"""

GITLAB_CI = """\
# Every merge request that touches the desired state is validated, and its job log
# says what it will do to the fleet.
fota-validate:
  image: python:3.11
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
      changes: ["manifests/**/*", "images/**/*"]
  script:
    - pip install fota-gitops
    - fota validate
    - git fetch origin "$CI_MERGE_REQUEST_TARGET_BRANCH_NAME"
    - fota plan --base "origin/$CI_MERGE_REQUEST_TARGET_BRANCH_NAME"
"""

PRE_COMMIT_CONFIG = """\
# `pre-commit install` once, then every commit that touches the desired state runs
# fota validate first (fota must be installed: pip install fota-gitops).
repos:
  - repo: local
    hooks:
      - id: fota-validate
        name: fota validate
        entry: fota validate
        language: system
        pass_filenames: false
        files: ^(manifests|images)/
"""

# Not written by `fota init`: this job belongs to the firmware's own repository (docs/ci.md).
PUBLISH_WORKFLOW = """\
# In the firmware repository: a tag v1.2.0 builds the firmware and publishes it into the
# desired-state repository as a commit on a branch publish/v1.2.0, for a pull request.
name: publish firmware
on:
  push:
    tags: ["v*"]
jobs:
  publish:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: make firmware  # your build, leaving build/app.bin
      - uses: actions/checkout@v4
        with:
          repository: your-org/desired-state
          path: desired-state
          token: ${{{{ secrets.DESIRED_STATE_TOKEN }}}}
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - run: pip install fota-gitops
      - run: git -C desired-state config user.name "firmware CI"
      - run: git -C desired-state config user.email "firmware-ci@example.com"
      - run: >-
          fota publish build/app.bin --collection {collection}
          --version "${{GITHUB_REF_NAME#v}}" --repo desired-state --commit
      - run: git -C desired-state push origin "HEAD:refs/heads/publish/$GITHUB_REF_NAME"
"""

GITIGNORE = """\
.fota/
"""


def publish_workflow(collection: str) -> str:
    """The firmware repository's publishing job, for `collection`."""
    return PUBLISH_WORKFLOW.format(collection=collection)


def files(collection: str) -> dict[str, str]:
    """Repository path -> text of every file `fota init` writes."""
    base = f"manifests/{collection}"
    texts = {
        f"{base}/collection.yaml": COLLECTION_YAML,
        f"{base}/images.yaml": IMAGES_YAML,
        f"{base}/devices/devices.yaml": DEVICES_YAML,
        "README.md": README,
        ".github/workflows/fota.yml": GITHUB_WORKFLOW,
        ".gitlab-ci.yml": GITLAB_CI,
        ".pre-commit-config.yaml": PRE_COMMIT_CONFIG,
        ".gitignore": GITIGNORE,
    }
    return {path: text.format(collection=collection) for path, text in texts.items()}
