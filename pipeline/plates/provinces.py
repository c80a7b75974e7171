"""The 77 provinces of Thailand (Thai name and Latin transliteration) and nearest-name matching.

Thai plates carry the province name in Thai: on the bottom line of car plates, on the middle line of three-line
motorcycle plates (series / province / number). The table below lists the 76 provinces plus Bangkok
(กรุงเทพมหานคร) in Thai alphabetical order, with the Royal Thai General System spelling used by the Thai
government. :func:`match_province` maps a noisy Thai or Latin string to the nearest entry.
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Province:
    """One Thai province: ``index`` is its position in :data:`PROVINCES` (the classifier's class id)."""

    index: int
    thai: str
    latin: str


_TABLE: tuple[tuple[str, str], ...] = (
    ("กรุงเทพมหานคร", "Bangkok"),
    ("กระบี่", "Krabi"),
    ("กาญจนบุรี", "Kanchanaburi"),
    ("กาฬสินธุ์", "Kalasin"),
    ("กำแพงเพชร", "Kamphaeng Phet"),
    ("ขอนแก่น", "Khon Kaen"),
    ("จันทบุรี", "Chanthaburi"),
    ("ฉะเชิงเทรา", "Chachoengsao"),
    ("ชลบุรี", "Chon Buri"),
    ("ชัยนาท", "Chai Nat"),
    ("ชัยภูมิ", "Chaiyaphum"),
    ("ชุมพร", "Chumphon"),
    ("เชียงราย", "Chiang Rai"),
    ("เชียงใหม่", "Chiang Mai"),
    ("ตรัง", "Trang"),
    ("ตราด", "Trat"),
    ("ตาก", "Tak"),
    ("นครนายก", "Nakhon Nayok"),
    ("นครปฐม", "Nakhon Pathom"),
    ("นครพนม", "Nakhon Phanom"),
    ("นครราชสีมา", "Nakhon Ratchasima"),
    ("นครศรีธรรมราช", "Nakhon Si Thammarat"),
    ("นครสวรรค์", "Nakhon Sawan"),
    ("นนทบุรี", "Nonthaburi"),
    ("นราธิวาส", "Narathiwat"),
    ("น่าน", "Nan"),
    ("บึงกาฬ", "Bueng Kan"),
    ("บุรีรัมย์", "Buri Ram"),
    ("ปทุมธานี", "Pathum Thani"),
    ("ประจวบคีรีขันธ์", "Prachuap Khiri Khan"),
    ("ปราจีนบุรี", "Prachin Buri"),
    ("ปัตตานี", "Pattani"),
    ("พระนครศรีอยุธยา", "Phra Nakhon Si Ayutthaya"),
    ("พะเยา", "Phayao"),
    ("พังงา", "Phangnga"),
    ("พัทลุง", "Phatthalung"),
    ("พิจิตร", "Phichit"),
    ("พิษณุโลก", "Phitsanulok"),
    ("เพชรบุรี", "Phetchaburi"),
    ("เพชรบูรณ์", "Phetchabun"),
    ("แพร่", "Phrae"),
    ("ภูเก็ต", "Phuket"),
    ("มหาสารคาม", "Maha Sarakham"),
    ("มุกดาหาร", "Mukdahan"),
    ("แม่ฮ่องสอน", "Mae Hong Son"),
    ("ยโสธร", "Yasothon"),
    ("ยะลา", "Yala"),
    ("ร้อยเอ็ด", "Roi Et"),
    ("ระนอง", "Ranong"),
    ("ระยอง", "Rayong"),
    ("ราชบุรี", "Ratchaburi"),
    ("ลพบุรี", "Lop Buri"),
    ("ลำปาง", "Lampang"),
    ("ลำพูน", "Lamphun"),
    ("เลย", "Loei"),
    ("ศรีสะเกษ", "Si Sa Ket"),
    ("สกลนคร", "Sakon Nakhon"),
    ("สงขลา", "Songkhla"),
    ("สตูล", "Satun"),
    ("สมุทรปราการ", "Samut Prakan"),
    ("สมุทรสงคราม", "Samut Songkhram"),
    ("สมุทรสาคร", "Samut Sakhon"),
    ("สระแก้ว", "Sa Kaeo"),
    ("สระบุรี", "Saraburi"),
    ("สิงห์บุรี", "Sing Buri"),
    ("สุโขทัย", "Sukhothai"),
    ("สุพรรณบุรี", "Suphan Buri"),
    ("สุราษฎร์ธานี", "Surat Thani"),
    ("สุรินทร์", "Surin"),
    ("หนองคาย", "Nong Khai"),
    ("หนองบัวลำภู", "Nong Bua Lam Phu"),
    ("อ่างทอง", "Ang Thong"),
    ("อำนาจเจริญ", "Amnat Charoen"),
    ("อุดรธานี", "Udon Thani"),
    ("อุตรดิตถ์", "Uttaradit"),
    ("อุทัยธานี", "Uthai Thani"),
    ("อุบลราชธานี", "Ubon Ratchathani"),
)

PROVINCES: tuple[Province, ...] = tuple(Province(i, th, la) for i, (th, la) in enumerate(_TABLE))
"""All 77 provinces; the index is the class id of the reader's province head."""

PROVINCE_NAMES_TH: tuple[str, ...] = tuple(p.thai for p in PROVINCES)
PROVINCE_NAMES_LATIN: tuple[str, ...] = tuple(p.latin for p in PROVINCES)

_ALIASES: dict[str, str] = {
    "กทม": "กรุงเทพมหานคร",
    "กรุงเทพ": "กรุงเทพมหานคร",
    "กรุงเทพฯ": "กรุงเทพมหานคร",
    "อยุธยา": "พระนครศรีอยุธยา",
    "krungthep": "กรุงเทพมหานคร",
    "krungthepmahanakhon": "กรุงเทพมหานคร",
    "bkk": "กรุงเทพมหานคร",
    "ayutthaya": "พระนครศรีอยุธยา",
    "korat": "นครราชสีมา",
    "chonburi": "ชลบุรี",
    "buriram": "บุรีรัมย์",
    "lopburi": "ลพบุรี",
    "prachinburi": "ปราจีนบุรี",
    "singburi": "สิงห์บุรี",
    "suphanburi": "สุพรรณบุรี",
    "sisaket": "ศรีสะเกษ",
    "sakaeo": "สระแก้ว",
    "phangnga": "พังงา",
    "chainat": "ชัยนาท",
}


def _key(text: str) -> str:
    """Comparison key: NFC, lower-case, without spaces, hyphens, dots or the Thai abbreviation mark."""
    text = unicodedata.normalize("NFC", text)
    # NIKHAHIT + SARA AA typed instead of SARA AM.
    text = text.replace("\u0e4d\u0e32", "\u0e33")
    return "".join(ch for ch in text.lower() if ch not in " \t\n-_.,'ฯ")


@lru_cache(maxsize=1)
def _index() -> dict[str, Province]:
    by_thai = {p.thai: p for p in PROVINCES}
    out: dict[str, Province] = {}
    for p in PROVINCES:
        out[_key(p.thai)] = p
        out[_key(p.latin)] = p
    for alias, thai in _ALIASES.items():
        out[_key(alias)] = by_thai[thai]
    return out


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions all cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def province_by_index(index: int) -> Province:
    """The province with class id ``index``."""
    return PROVINCES[index]


def province_by_name(name: str) -> Province | None:
    """Exact lookup by Thai name, Latin name or a common alias (case/space-insensitive)."""
    return _index().get(_key(name))


def match_province(text: str | None, max_ratio: float = 0.4) -> Province | None:
    """Return the province whose Thai or Latin name is nearest to ``text``.

    The match is exact first, then by edit distance; a candidate is accepted only when the distance is at most
    ``max_ratio`` times the length of the candidate name (so random strings give ``None``).
    """
    if not text:
        return None
    key = _key(text)
    if not key:
        return None
    exact = _index().get(key)
    if exact is not None:
        return exact
    best: tuple[float, Province] | None = None
    for name, prov in _index().items():
        dist = levenshtein(key, name)
        ratio = dist / max(len(name), 1)
        if best is None or ratio < best[0]:
            best = (ratio, prov)
    if best is not None and best[0] <= max_ratio:
        return best[1]
    logger.debug("no province close to %r", text)
    return None
