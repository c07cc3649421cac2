#!/bin/sh
# Install a competitive config pack (the "L4D2 Competitive Rework" layout: cfg/ and addons/
# at the top of the archive) into an overlay.
# Runs inside the left4me build sandbox (module left4me.l4d2.script_overlay): the overlay is
# /overlay and /tmp is private. The pack owns the overlay's left4dead2/cfg and
# left4dead2/addons: every build replaces them with the pack's content.
#
# $COMPETITIVE_BASE_URL/$COMPETITIVE_REF.tar.gz is the pack; set COMPETITIVE_SHA256 to pin
# its checksum.
# requires: curl sha256sum tar gzip mktemp mkdir rm cp find wc
#   (the commands this script runs; the game_host role installs them and
#   molecule/install checks each with `command -v` on a converged host)
set -eu

COMPETITIVE_BASE_URL=${COMPETITIVE_BASE_URL:-https://github.com/SirPlease/L4D2-Competitive-Rework/archive/refs/heads}
COMPETITIVE_REF=${COMPETITIVE_REF:-master}
COMPETITIVE_SHA256=${COMPETITIVE_SHA256:-}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "downloading: $COMPETITIVE_REF.tar.gz"
curl --fail --silent --show-error --location --retry 3 --max-time 900 \
  "$COMPETITIVE_BASE_URL/$COMPETITIVE_REF.tar.gz" -o "$work/pack.tar.gz"
if [ -n "$COMPETITIVE_SHA256" ]; then
  echo "$COMPETITIVE_SHA256  $work/pack.tar.gz" | sha256sum --check --quiet
fi
mkdir "$work/pack"
# No owners or permissions from the archive: files belong to the build user, umask 022.
tar -xzf "$work/pack.tar.gz" -C "$work/pack" --strip-components=1 --no-same-owner \
  --no-same-permissions
[ -d "$work/pack/cfg" ] || { echo "the pack has no cfg/ directory" >&2; exit 1; }

rm -rf /overlay/left4dead2/cfg /overlay/left4dead2/addons
mkdir -p /overlay/left4dead2
for part in cfg addons; do
  [ -d "$work/pack/$part" ] && cp -R "$work/pack/$part" "/overlay/left4dead2/$part"
done
echo "competitive pack $COMPETITIVE_REF: $(find /overlay/left4dead2 -type f | wc -l) files"
