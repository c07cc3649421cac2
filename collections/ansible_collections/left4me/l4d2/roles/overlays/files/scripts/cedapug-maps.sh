#!/bin/sh
# Sync the cedapug custom campaign maps into an overlay's addons/.
# Runs inside the left4me build sandbox (module left4me.l4d2.script_overlay): the overlay is
# /overlay, the previous build's tree is already there (incremental), /tmp is private.
#
# The source publishes an md5sum-style list, "<md5>  <file.vpk>" per line, at
# $CEDAPUG_BASE_URL/maplist.txt and each map at $CEDAPUG_BASE_URL/<file.vpk>.
# Maps already present with the right checksum are not downloaded again; maps this
# script installed earlier that left the list are removed; other addons are left alone.
# requires: curl md5sum mktemp mkdir mv rm grep sort wc
#   (the commands this script runs; the game_host role installs them and
#   molecule/install checks each with `command -v` on a converged host)
set -eu

CEDAPUG_BASE_URL=${CEDAPUG_BASE_URL:-https://cedapug.com/maps}
ADDONS=/overlay/left4dead2/addons
MANIFEST=/overlay/.cedapug-maps   # the maps this script owns, one file name per line

fetch() { curl --fail --silent --show-error --location --retry 3 --max-time 900 "$@"; }

mkdir -p "$ADDONS"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fetch "$CEDAPUG_BASE_URL/maplist.txt" -o "$work/maplist.txt"
: > "$work/wanted"
while read -r md5 file; do
  [ -n "$md5" ] || continue
  case $file in
    */* | .* | *[!A-Za-z0-9._-]* | "") echo "skipping unsafe map name: $file" >&2; continue ;;
    *.vpk) ;;
    *) echo "skipping non-vpk entry: $file" >&2; continue ;;
  esac
  echo "$file" >> "$work/wanted"
  if [ -f "$ADDONS/$file" ] && echo "$md5  $ADDONS/$file" | md5sum --check --status; then
    echo "up to date: $file"
    continue
  fi
  echo "downloading: $file"
  fetch "$CEDAPUG_BASE_URL/$file" -o "$work/$file"
  echo "$md5  $work/$file" | md5sum --check --quiet
  mv -f "$work/$file" "$ADDONS/$file"
done < "$work/maplist.txt"

if [ -f "$MANIFEST" ]; then
  while read -r old; do
    if ! grep -qxF "$old" "$work/wanted"; then
      echo "removing: $old"
      rm -f "$ADDONS/$old"
    fi
  done < "$MANIFEST"
fi
sort "$work/wanted" > "$MANIFEST"
echo "cedapug maps: $(wc -l < "$MANIFEST") installed"
