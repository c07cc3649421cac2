#!/bin/sh
# Build the stand-in download source the example build scripts fetch from in tests:
# a cedapug map list, l4d2center 7z archives, a competitive config pack tarball and a
# tickrate enabler zip, all small fakes with the real layouts. Usage: make-standin.sh DIR
set -eu
root=$1
rm -rf "$root"
mkdir -p "$root/cedapug" "$root/l4d2center" "$root/competitive" "$root/tickrate"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

vpk() { printf 'VPK stand-in %s\n' "$1" > "$2"; head -c 4096 /dev/urandom >> "$2"; }

# cedapug: md5sum-style list plus the maps
for map in cedapug_deadcity.vpk cedapug_ravenholm.vpk; do
  vpk "$map" "$root/cedapug/$map"
done
(cd "$root/cedapug" && md5sum ./*.vpk | sed 's| \./| |' > maplist.txt)

# l4d2center: archives with vpks in sub-directories and a readme, md5 in the index
for campaign in urbanflight darkblood; do
  mkdir -p "$work/$campaign/maps"
  vpk "$campaign part 1" "$work/$campaign/maps/${campaign}_1.vpk"
  vpk "$campaign part 2" "$work/$campaign/maps/${campaign}_2.vpk"
  echo "readme of $campaign" > "$work/$campaign/README.txt"
  (cd "$work" && 7z a -bd "$root/l4d2center/$campaign.7z" "$campaign" > /dev/null)
  echo "$campaign.7z $(md5sum < "$root/l4d2center/$campaign.7z" | cut -d' ' -f1)" \
    >> "$root/l4d2center/index.txt"
done

# competitive: a GitHub-style tarball with one top directory
top=$work/L4D2-Competitive-Rework-master
mkdir -p "$top/cfg/cfgogl/zonemod" "$top/addons/sourcemod/plugins"
echo 'exec confogl.cfg' > "$top/cfg/server.cfg"
echo 'sm_cvar z_tank_health 4000' > "$top/cfg/cfgogl/zonemod/confogl.cfg"
echo 'plugin stand-in' > "$top/addons/sourcemod/plugins/l4d2_stand_in.smx"
chmod 600 "$top/cfg/server.cfg"   # a tool that writes 0600 files: the build must fix it
tar -czf "$root/competitive/master.tar.gz" -C "$work" L4D2-Competitive-Rework-master

# tickrate: zip with addons/
mkdir -p "$work/tick/addons"
echo 'tickrate enabler stand-in' > "$work/tick/addons/tickrate_enabler.so"
printf '"Plugin"\n{\n\t"file"\t"../left4dead2/addons/tickrate_enabler"\n}\n' \
  > "$work/tick/addons/tickrate_enabler.vdf"
(cd "$work/tick" && 7z a -bd -tzip "$root/tickrate/tickrate_enabler.zip" addons > /dev/null)

chmod -R a+rX "$root"
echo "stand-in source ready in $root"
