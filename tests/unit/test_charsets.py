"""dicomize/charsets.py: every encoding round trips through pydicom.

A person name and a long string are encoded with our Encoding, written with our writer under the
Specific Character Set term the encoding writes, read back by pydicom and decoded: they must come back
equal. The names of the multi-byte sets are PS3.5 Annex H/I/J's examples.
"""
import io

import pydicom
import pytest

from advanced_rest.dicomize import charsets, writer
from advanced_rest.dicomize.writer import Element

SPECIFIC_CHARACTER_SET, PATIENT_NAME, INSTITUTION_NAME = 0x00080005, 0x00100010, 0x00080080

# encoding name -> (person name, long string), in characters that encoding can represent.
TEXTS = {
    "Ascii": ("Doe^John", "General Hospital"),
    "Utf8": ("Jodogne^Sébastien=山田^太郎=홍^길동", "Ελληνικά, русский, עברית, 中文"),
    "Latin1": ("Buc^Jérôme", "Hôpital Sainte-Anne"),
    "Latin2": ("Dvořák^Žofie", "Nemocnice Ústí nad Labem"),
    "Latin3": ("Ġużeppi^Ħabib", "Sptar Mater Dei, Ħal Balzan"),
    "Latin4": ("Ķēniņš^Ūdris", "Rīgas slimnīca"),
    "Latin5": ("Şahin^Ağaoğlu", "İstanbul Üniversitesi Hastanesi"),
    "Cyrillic": ("Иванов^Пётр", "Больница имени Пирогова"),
    "Windows1251": ("Иванов^Пётр", "Больница №1"),
    "Arabic": ("قباني^لنزار", "مستشفى القاهرة"),
    "Greek": ("Διονυσιος", "Νοσοκομείο Αθηνών"),
    "Hebrew": ("שרון^דבורה", "בית חולים"),
    "Thai": ("สมชาย^ใจดี", "โรงพยาบาลศิริราช"),
    "Japanese": ("ﾔﾏﾀﾞ^ﾀﾛｳ", "ﾋﾞｮｳｲﾝ Tokyo"),
    "JapaneseKanji": ("Yamada^Tarou=山田^太郎=やまだ^たろう", "東京病院"),
    "Chinese": ("Wang^XiaoDong=王^小東", "北京协和医院"),
    "Korean": ("Hong^Gildong=洪^吉洞=홍^길동", "서울대학교병원"),
    "SimplifiedChinese": ("Zhang^XiaoDong=张^小东", "上海医院"),
}


# pydicom decodes an ISO 2022 IR 87 name right, then re-encodes it to keep its original bytes: with the
# single value "ISO 2022 IR 87" (what the core writes for JapaneseKanji) it finds no repertoire for the
# ASCII groups ("Yamada^Tarou") and warns. The decoded value, which is what is checked, is exact.
PYDICOM_REENCODING_WARNING = pytest.mark.filterwarnings("ignore:Failed to encode value with encodings. iso2022_jp ")


def _read_back(encoding, term, name, institution):
    elements = {PATIENT_NAME: Element("PN", encoding.encode(name)),
                INSTITUTION_NAME: Element("LO", encoding.encode(institution))}
    if term:
        elements[SPECIFIC_CHARACTER_SET] = Element("CS", term.encode("ascii"))
    return pydicom.dcmread(io.BytesIO(writer.encode_file(elements)))


def test_every_encoding_has_texts():
    assert set(TEXTS) == set(charsets.ENCODINGS)


@PYDICOM_REENCODING_WARNING
@pytest.mark.parametrize("name", [name for name in charsets.ENCODINGS if charsets.ENCODINGS[name].term])
def test_a_name_and_a_long_string_round_trip_through_pydicom(name):
    encoding = charsets.ENCODINGS[name]
    person, institution = TEXTS[name]
    assert encoding.encode(person).decode(encoding.codec) == person, "the sample must fit the encoding"
    dataset = _read_back(encoding, encoding.term, person, institution)
    assert dataset.SpecificCharacterSet == encoding.term
    assert str(dataset.PatientName) == person
    assert dataset.InstitutionName == institution


def test_windows1251_writes_no_character_set_and_its_bytes():
    # Not a DICOM character set: like the core, no Specific Character Set is written, so a reader takes
    # the default repertoire (pydicom: Latin-1). The bytes are cp1251; only a reader told so decodes them.
    encoding = charsets.ENCODINGS["Windows1251"]
    person, institution = TEXTS["Windows1251"]
    dataset = _read_back(encoding, encoding.term, person, institution)
    assert "SpecificCharacterSet" not in dataset
    assert dataset[PATIENT_NAME].value.encode("latin_1").decode("cp1251") == person


# Every term from_term knows, with the encoding it stands for: written under that very term.
TERMS = sorted(charsets._TERMS.items())


@PYDICOM_REENCODING_WARNING
@pytest.mark.parametrize("term, name", TERMS, ids=[term for term, _ in TERMS])
def test_every_known_term_round_trips_through_pydicom_under_that_term(term, name):
    encoding = charsets.from_term(term)
    assert encoding is charsets.ENCODINGS[name]
    person, institution = TEXTS[name]
    dataset = _read_back(encoding, term, person, institution)
    assert str(dataset.PatientName) == person
    assert dataset.InstitutionName == institution


@pytest.mark.parametrize("written, name", [
    ("ISO_IR 100", "Latin1"), ("iso_ir 100", "Latin1"), (" ISO_IR 192 ", "Utf8"), ("ISO_IR_144", "Cyrillic"),
    ("ISO_2022_IR_87", "JapaneseKanji"), ("iso 2022 ir 149", "Korean"), ("gbk", "Chinese"),
], ids=["exact", "lower-case", "spaces", "underscores", "iso-2022-underscores", "iso-2022-lower-case", "gbk"])
def test_from_term_normalises_as_the_core_does(written, name):
    assert charsets.from_term(written) is charsets.ENCODINGS[name]


@pytest.mark.parametrize("written", ["", "FOO", "ISO_IR 999", "\\ISO 2022 IR 87"],
                         ids=["empty", "unknown", "unknown-number", "multi-valued"])
def test_from_term_knows_no_other_term(written):
    assert charsets.from_term(written) is None


def test_from_name_falls_back_to_latin1():
    assert charsets.from_name("Greek") is charsets.ENCODINGS["Greek"]
    assert charsets.from_name("Klingon") is charsets.ENCODINGS["Latin1"]


def test_characters_an_encoding_cannot_hold_are_dropped():
    assert charsets.ENCODINGS["Latin1"].encode("Buc^Jérôme 山田") == "Buc^Jérôme ".encode("latin_1")
    assert charsets.ENCODINGS["Ascii"].encode("Sébastien") == b"Sbastien"
