#!/usr/bin/env bash
# Build, here, the Python packages the GPU machine lacks, as one tarball that a device call carries.
#
# The device machine (see the device tool's README) has Python 3.12 with PyTorch, numpy, attrs, typer, rich,
# pyyaml, matplotlib, absl-py, protobuf and lxml, no network, and a 64 MiB limit on what travels. hindsight
# also needs MuJoCo, dm_control, dm_env, dm-tree and pydantic: this downloads their cp312 manylinux wheels,
# unpacks them into one folder, drops what the GPU checks never load (dm_control's locomotion and
# manipulation assets, MuJoCo's experimental modules: ~125 MB) and packs the rest into .device/site.tar.gz
# (git-ignored through .git/info/exclude).
#
#     bash tools/device_site.sh [PYTHON_VERSION]    # default 3.12; 3.11 builds one to try out here
#
# Then: the device tool's run with carry [".device"] and the command `bash tools/device_check.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-3.12}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
tag="cp${version/./}"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux_2_5_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
python3 -m pip download --quiet --only-binary=:all: --python-version "$version" --implementation cp \
  "${platforms[@]}" -d "$work/wheels" "mujoco>=3.17,<4" "dm-control==1.0.50" "dm-env>=1.6" "pydantic>=2.6,<3"

# keep what the device lacks (its own numpy, scipy, lxml, protobuf, absl-py, ... stay in use)
keep='^(mujoco|dm_control|dm_env|dm_tree|pydantic|pydantic_core|annotated_types|typing_inspection|typing_extensions|glfw|pyopengl|PyOpenGL|etils)-'
mkdir -p "$work/site"
for wheel in "$work"/wheels/*.whl; do
  name=$(basename "$wheel")
  if [[ "$name" =~ $keep ]]; then
    python3 -m zipfile -e "$wheel" "$work/site"
    echo "  $name"
  fi
done
rm -rf "$work/site/dm_control/locomotion" "$work/site/dm_control/manipulation" "$work/site/mujoco/experimental"
mkdir -p .device
tar czf .device/site.tar.gz -C "$work/site" .
echo "built .device/site.tar.gz for $tag: $(du -h .device/site.tar.gz | cut -f1)" \
     "($(du -sh "$work/site" | cut -f1) unpacked)"
