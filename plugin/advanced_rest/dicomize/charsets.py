"""Orthanc's encodings: their DICOM Specific Character Set terms and Python codecs."""
import dataclasses


@dataclasses.dataclass(frozen=True)
class Encoding:
    """One of Orthanc's encodings (the names of GET /tools/default-encoding)."""

    name: str
    term: str  # Specific Character Set written for it; "" writes none (Windows1251)
    codec: str

    def encode(self, text):
        """`text` in this encoding; characters it cannot represent are dropped, as the core does."""
        return text.encode(self.codec, "ignore")


ENCODINGS = {e.name: e for e in (
    Encoding("Ascii", "ISO_IR 6", "ascii"),
    Encoding("Utf8", "ISO_IR 192", "utf-8"),
    Encoding("Latin1", "ISO_IR 100", "latin_1"),
    Encoding("Latin2", "ISO_IR 101", "iso8859_2"),
    Encoding("Latin3", "ISO_IR 109", "iso8859_3"),
    Encoding("Latin4", "ISO_IR 110", "iso8859_4"),
    Encoding("Latin5", "ISO_IR 148", "iso8859_9"),
    Encoding("Cyrillic", "ISO_IR 144", "iso8859_5"),
    # Not a DICOM character set: the core writes no Specific Character Set for it.
    Encoding("Windows1251", "", "cp1251"),
    Encoding("Arabic", "ISO_IR 127", "iso8859_6"),
    Encoding("Greek", "ISO_IR 126", "iso8859_7"),
    Encoding("Hebrew", "ISO_IR 138", "iso8859_8"),
    Encoding("Thai", "ISO_IR 166", "iso8859_11"),
    Encoding("Japanese", "ISO_IR 13", "shift_jis"),
    Encoding("Chinese", "GB18030", "gb18030"),
    Encoding("Korean", "ISO 2022 IR 149", "euc_kr"),
    Encoding("JapaneseKanji", "ISO 2022 IR 87", "iso2022_jp"),
    Encoding("SimplifiedChinese", "ISO 2022 IR 58", "gb2312"),
)}

# Specific Character Set terms the core understands (after normalisation) -> encoding name.
_TERMS = {e.term: e.name for e in ENCODINGS.values() if e.term}
_TERMS.update({
    "ISO 2022 IR 6": "Ascii", "ISO 2022 IR 100": "Latin1", "ISO 2022 IR 101": "Latin2",
    "ISO 2022 IR 109": "Latin3", "ISO 2022 IR 110": "Latin4", "ISO 2022 IR 148": "Latin5",
    "ISO 2022 IR 144": "Cyrillic", "ISO 2022 IR 127": "Arabic", "ISO 2022 IR 126": "Greek",
    "ISO 2022 IR 138": "Hebrew", "ISO 2022 IR 166": "Thai", "ISO 2022 IR 13": "Japanese",
    "GBK": "Chinese",
})


def from_term(term):
    """The Encoding of a Specific Character Set value, or None when the core would not know it."""
    normal = term.strip().upper().replace("ISO_IR_", "ISO_IR ").replace("ISO_2022_IR_", "ISO 2022 IR ")
    name = _TERMS.get(normal)
    return ENCODINGS[name] if name else None


def from_name(name):
    """The Encoding called `name` by Orthanc (e.g. "Latin1"); Latin1 when unknown."""
    return ENCODINGS.get(name, ENCODINGS["Latin1"])
