#!/bin/sh
# Sync the l4d2center map archives (non-Workshop custom campaigns) into an overlay.
# Runs inside the left4me build sandbox (module left4me.l4d2.script_overlay): the overlay is
# /overlay, the previous build's tree is already there (incremental), /tmp is private.
# Needs 7z (package 7zip) and md5sum (coreutils).
#
# The source lists one archive per line, "<archive.7z> <md5>", at
# $L4D2CENTER_BASE_URL/index.txt and serves each archive beside it. Every archive is
# unpacked once into /overlay/l4d2center/<archive name>/ (with its md5 as a stamp) and its
# .vpk files are reconciled as relative symlinks into left4dead2/addons/: links for
# archives that left the index are removed, foreign addons are never touched.
# requires: curl md5sum 7z mktemp mkdir mv rm find basename dirname readlink ln grep cat
#   (the commands this script runs; the game_host role installs them and
#   molecule/install checks each with `command -v` on a converged host)
set -eu

L4D2CENTER_BASE_URL=${L4D2CENTER_BASE_URL:-https://l4d2center.com/maps/servers}
STORE=/overlay/l4d2center
ADDONS=/overlay/left4dead2/addons

fetch() { curl --fail --silent --show-error --location --retry 3 --max-time 1800 "$@"; }

mkdir -p "$STORE" "$ADDONS"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fetch "$L4D2CENTER_BASE_URL/index.txt" -o "$work/index.txt"
: > "$work/wanted"
while read -r archive md5; do
  [ -n "$archive" ] || continue
  case $archive in
    */* | .* | *[!A-Za-z0-9._-]*) echo "skipping unsafe archive name: $archive" >&2; continue ;;
    *.7z | *.zip) ;;
    *) echo "skipping unknown archive type: $archive" >&2; continue ;;
  esac
  name=${archive%.*}
  echo "$name" >> "$work/wanted"
  if [ "$(cat "$STORE/$name/.md5" 2>/dev/null)" = "$md5" ]; then
    echo "up to date: $archive"
    continue
  fi
  echo "downloading: $archive"
  fetch "$L4D2CENTER_BASE_URL/$archive" -o "$work/$archive"
  echo "$md5  $work/$archive" | md5sum --check --quiet
  rm -rf "$work/unpacked"
  7z x -y -bd -o"$work/unpacked" "$work/$archive" > /dev/null
  rm -f "$work/$archive"
  find "$work/unpacked" -type f ! -name '*.vpk' -delete
  mkdir -p "$work/unpacked/flat"
  find "$work/unpacked" -type f -name '*.vpk' ! -path "$work/unpacked/flat/*" \
    -exec mv -f {} "$work/unpacked/flat/" \;
  echo "$md5" > "$work/unpacked/flat/.md5"
  rm -rf "${STORE:?}/$name"
  mv "$work/unpacked/flat" "$STORE/$name"
done < "$work/index.txt"

# Archives that left the index.
for dir in "$STORE"/*/; do
  [ -d "$dir" ] || continue
  name=$(basename "$dir")
  if ! grep -qxF "$name" "$work/wanted"; then
    echo "removing: $name"
    rm -rf "${STORE:?}/$name"
  fi
done

# Reconcile addons/: one relative link per unpacked .vpk; drop our dangling links.
for link in "$ADDONS"/*.vpk; do
  [ -L "$link" ] || continue
  case $(readlink "$link") in
    ../../l4d2center/*) [ -e "$link" ] || { echo "unlinking: $(basename "$link")"; rm -f "$link"; } ;;
  esac
done
count=0
for vpk in "$STORE"/*/*.vpk; do
  [ -f "$vpk" ] || continue
  rel=../../l4d2center/$(basename "$(dirname "$vpk")")/$(basename "$vpk")
  target=$ADDONS/$(basename "$vpk")
  if [ -e "$target" ] && [ ! -L "$target" ]; then
    echo "not replacing foreign addon: $(basename "$vpk")" >&2
    continue
  fi
  [ "$(readlink "$target" 2>/dev/null)" = "$rel" ] || ln -sfn "$rel" "$target"
  count=$((count + 1))
done
echo "l4d2center maps: $count vpk files linked"
