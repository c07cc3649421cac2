"""Workshop items and collections the fake API knows, in the shapes Steam returns."""

from __future__ import annotations

import hashlib
import json
import threading
import zlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from standins import vpk

RESULT_OK = 1
RESULT_FILE_NOT_FOUND = 9
BASE_TIME = 1_600_000_000  # fixed epoch so generated catalogues are reproducible
GENERATED_ITEM_BASE = 1_000_000_000
GENERATED_COLLECTION_BASE = 3_000_000_000
TAGS = ["Campaigns", "Survivors", "Weapons", "Maps", "Scripts", "UI"]
# Where an item's file lives, which decides what GetPublishedFileDetails says about it:
#   legacy    - old UGC: file_url is a direct download of the .vpk (most L4D2 add-ons);
#   steampipe - UGC v2 / SteamPipe depot: file_url and filename are empty, hcontent_file is
#               the depot manifest; only steamcmd (workshop_download_item) can fetch it;
#   preview   - file_url is set but serves the preview image, not the add-on (seen on items
#               re-published through SteamPipe): only steamcmd gets the .vpk.
HOSTINGS = ("legacy", "steampipe", "preview")
# A JPEG's first bytes (SOI, APP0 "JFIF"): what a preview download starts with.
JPEG_HEADER = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"


@dataclass
class Item:
    publishedfileid: int
    title: str = ""
    file_size: int = 0
    filename: str = ""
    creator: str = ""
    consumer_app_id: int = 550
    removed: bool = False
    banned: bool = False
    ban_reason: str = ""
    time_created: int = BASE_TIME
    time_updated: int = BASE_TIME
    revision: int = 1
    visibility: int = 0
    description: str = ""
    tags: list[str] = field(default_factory=list)
    hosting: str = "legacy"

    def __post_init__(self) -> None:
        item_id = self.publishedfileid
        if self.hosting not in HOSTINGS:
            raise ValueError(f"item {item_id}: hosting must be one of {', '.join(HOSTINGS)}")
        self.title = self.title or f"Stand-in add-on {item_id}"
        self.file_size = self.file_size or vpk.default_item_size(item_id)
        self.filename = self.filename or f"{item_id}.vpk"
        self.creator = self.creator or str(76561197960265728 + zlib.crc32(str(item_id).encode()))
        self.tags = self.tags or [TAGS[item_id % len(TAGS)]]
        self.description = self.description or f"Deterministic test content for {item_id}."

    @property
    def content_seed(self) -> str:
        return vpk.item_seed(self.publishedfileid, self.revision)

    @property
    def content_name(self) -> str:
        """The file steamcmd leaves in the item's content dir.

        SteamPipe items hold the file the author uploaded; legacy items come down as one
        ``<hcontent_file>_legacy.bin`` (reported for L4D2 and Garry's Mod; for L4D2 it is
        the .vpk itself), which is why a reader must go by the VPK signature, not the name.
        """
        if self.hosting == "legacy":
            return f"{hcontent_file(self)}_legacy.bin"
        return self.filename


def hcontent_file(item: Item) -> int:
    return 5_000_000_000_000_000_000 + zlib.crc32(item.content_seed.encode())


@dataclass
class Collection:
    publishedfileid: int
    title: str = ""
    children: list[int] = field(default_factory=list)
    removed: bool = False
    time_updated: int = BASE_TIME


def _counter(item_id: int, salt: str, modulo: int) -> int:
    return int(hashlib.sha256(f"{salt}:{item_id}".encode()).hexdigest()[:8], 16) % modulo


def item_details(item: Item, base_url: str) -> dict[str, object]:
    """One entry of publishedfiledetails, field for field as ISteamRemoteStorage answers."""
    item_id = item.publishedfileid
    if item.removed:
        return {"publishedfileid": str(item_id), "result": RESULT_FILE_NOT_FOUND}
    hcontent = hcontent_file(item)
    file_url = f"{base_url}/ugc/{item_id}/{item.revision}/{item.filename}"
    preview_url = f"{base_url}/preview/{item_id}.jpg"
    if item.hosting == "steampipe":
        file_url = ""
    elif item.hosting == "preview":
        file_url = preview_url
    return {
        "publishedfileid": str(item_id),
        "result": RESULT_OK,
        "creator": item.creator,
        "creator_app_id": item.consumer_app_id,
        "consumer_app_id": item.consumer_app_id,
        "filename": "" if item.hosting == "steampipe" else item.filename,
        "file_size": item.file_size,
        "file_url": file_url,
        "hcontent_file": str(hcontent),
        "preview_url": preview_url,
        "hcontent_preview": str(hcontent + 1),
        "title": item.title,
        "description": item.description,
        "time_created": item.time_created,
        "time_updated": item.time_updated,
        "visibility": item.visibility,
        "banned": int(item.banned),
        "ban_reason": item.ban_reason,
        "subscriptions": _counter(item_id, "subs", 100_000),
        "favorited": _counter(item_id, "fav", 10_000),
        "lifetime_subscriptions": _counter(item_id, "lsubs", 1_000_000),
        "lifetime_favorited": _counter(item_id, "lfav", 100_000),
        "views": _counter(item_id, "views", 5_000_000),
        "tags": [{"tag": tag} for tag in item.tags],
    }


class Catalogue:
    def __init__(self) -> None:
        self.items: dict[int, Item] = {}
        self.collections: dict[int, Collection] = {}
        self.player_names: dict[str, str] = {}
        # GetCollectionDetails on an id that is a plain item: 9 (file not found) or 1 (OK,
        # without a children list); real Steam has been seen answering both.
        self.plain_item_result = RESULT_FILE_NOT_FOUND
        self.lock = threading.Lock()

    def details(self, item_id: int, base_url: str) -> dict[str, object]:
        with self.lock:
            item = self.items.get(item_id)
            collection = self.collections.get(item_id)
            if item is not None:
                return item_details(item, base_url)
            if collection is not None and not collection.removed:
                return _collection_as_item(collection)
            return {"publishedfileid": str(item_id), "result": RESULT_FILE_NOT_FOUND}

    def collection_details(self, collection_id: int) -> dict[str, object]:
        with self.lock:
            collection = self.collections.get(collection_id)
            if collection_id in self.items and collection is None:
                # A plain item asked for as a collection: Steam answers result 9 on some days
                # and result 1 with no children on others (see plain_item_result).
                if self.plain_item_result == RESULT_OK:
                    return {"publishedfileid": str(collection_id), "result": RESULT_OK}
                return {"publishedfileid": str(collection_id), "result": RESULT_FILE_NOT_FOUND}
            if collection is None or collection.removed:
                return {"publishedfileid": str(collection_id), "result": RESULT_FILE_NOT_FOUND}
            children = [
                {
                    "publishedfileid": str(child),
                    "sortorder": order,
                    "filetype": self._filetype(child),
                }
                for order, child in enumerate(collection.children, 1)
            ]
            return {
                "publishedfileid": str(collection_id),
                "result": RESULT_OK,
                "children": children,
            }

    def _filetype(self, child: int) -> int:
        return 2 if child in self.collections else 0  # 0 = item, 2 = collection

    def item(self, item_id: int) -> Item | None:
        with self.lock:
            return self.items.get(item_id)

    def upsert_item(self, values: dict[str, object]) -> Item:
        known = {f.name for f in fields(Item)}
        with self.lock:
            item_id = int(str(values["publishedfileid"]))
            current = asdict(self.items[item_id]) if item_id in self.items else {}
            current.update({k: v for k, v in values.items() if k in known})
            current["publishedfileid"] = item_id
            self.items[item_id] = Item(**current)  # type: ignore[arg-type]
            return self.items[item_id]

    def upsert_collection(self, values: dict[str, object]) -> Collection:
        with self.lock:
            collection_id = int(str(values["publishedfileid"]))
            children = [int(str(child)) for child in values.get("children", [])]  # type: ignore[attr-defined]
            collection = Collection(
                collection_id,
                str(values.get("title", f"Stand-in collection {collection_id}")),
                children,
                bool(values.get("removed", False)),
            )
            self.collections[collection_id] = collection
            return collection

    def bump(self, item_id: int) -> Item | None:
        """An author publishes an update: new revision (new bytes), later time_updated."""
        with self.lock:
            item = self.items.get(item_id)
            if item is not None:
                item.revision += 1
                item.time_updated += 3600
            return item

    def dump(self) -> dict[str, object]:
        with self.lock:
            return {
                "items": [asdict(item) for item in self.items.values()],
                "collections": [asdict(c) for c in self.collections.values()],
                "players": dict(self.player_names),
            }


def _collection_as_item(collection: Collection) -> dict[str, object]:
    return {
        "publishedfileid": str(collection.publishedfileid),
        "result": RESULT_OK,
        "consumer_app_id": 550,
        "creator_app_id": 766,  # the Steam Workshop app that owns collections
        "title": collection.title,
        "file_size": 0,
        "filename": "",
        "time_updated": collection.time_updated,
        "banned": 0,
        "tags": [],
    }


def load_catalogue(path: Path) -> Catalogue:
    """JSON: {"items": [{...}], "collections": [{...children: [ids]}], "players": {id: name}}."""
    data = json.loads(path.read_text())
    catalogue = Catalogue()
    for values in data.get("items", []):
        catalogue.upsert_item(values)
    for values in data.get("collections", []):
        catalogue.upsert_collection(values)
    catalogue.player_names.update({str(k): str(v) for k, v in data.get("players", {}).items()})
    return catalogue


def generate_catalogue(count: int) -> Catalogue:
    """N items, a collection of the first half that nests a second collection of the rest."""
    catalogue = Catalogue()
    ids = [GENERATED_ITEM_BASE + index for index in range(1, count + 1)]
    for item_id in ids:
        catalogue.upsert_item({"publishedfileid": item_id})
    half = len(ids) // 2
    outer, inner = GENERATED_COLLECTION_BASE + 1, GENERATED_COLLECTION_BASE + 2
    catalogue.upsert_collection({"publishedfileid": inner, "children": ids[half:]})
    catalogue.upsert_collection({"publishedfileid": outer, "children": [*ids[:half], inner]})
    return catalogue
