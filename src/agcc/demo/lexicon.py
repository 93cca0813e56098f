"""Sentences, a small ARPAbet lexicon (CMUdict-style, with stress digits) and ARPAbet -> IPA.

demo_crema speaks the 12 fixed CREMA-D sentences; demo_improv speaks 20 short invented sentences
(S01..S20) written so that the paper's six vowels AA AH EH IY AE UW all occur often. The IPA
spelling follows the english_mfa model: stressed IY/UW and stressed AA before R or at a word end
are long (iː uː ɑː), AH0 is ə and AH1/AH2 is ʌ.
"""

from __future__ import annotations

from agcc.corpora.crema_d import SENTENCES
from agcc.phones import words_of

# The 12 CREMA-D sentence texts, shared with the corpus adapter (one source of truth).
CREMA_SENTENCES: dict[str, str] = SENTENCES

IMPROV_SENTENCES: dict[str, str] = {
    "S01": "We need to move the boxes soon",
    "S02": "My father has a black cat",
    "S03": "She said the red bed was cheap",
    "S04": "You knew the new school rules",
    "S05": "Tom got a hot pot of coffee",
    "S06": "The man had a bad map",
    "S07": "Let me get the best pen",
    "S08": "Keep the green tea in the jeep",
    "S09": "Come up and have some fun",
    "S10": "Do you want to go to the zoo",
    "S11": "The doctor will call me back",
    "S12": "I left the bag at the desk",
    "S13": "Sue threw the food in the pool",
    "S14": "Stop the car at the top",
    "S15": "We will meet the team at three",
    "S16": "The sun is up above us",
    "S17": "Ten men sent a letter",
    "S18": "That cat sat on my hat",
    "S19": "Why did you lose the blue shoe",
    "S20": "I really need a good night of sleep",
}

_LEXICON_TEXT = """
a AH0
about AH0 B AW1 T
above AH0 B AH1 V
airplane EH1 R P L EY2 N
alarm AH0 L AA1 R M
almost AO1 L M OW2 S T
and AE1 N D
appointment AH0 P OY1 N T M AH0 N T
at AE1 T
bad B AE1 D
back B AE1 K
bag B AE1 G
be B IY1
bed B EH1 D
before B IH0 F AO1 R
best B EH1 S T
black B L AE1 K
blue B L UW1
boxes B AA1 K S AH0 Z
call K AO1 L
car K AA1 R
cat K AE1 T
cheap CH IY1 P
clock K L AA1 K
coffee K AA1 F IY0
cold K OW1 L D
come K AH1 M
couple K AH1 P AH0 L
desk D EH1 S K
did D IH1 D
do D UW1
doctor D AA1 K T ER0
doctor's D AA1 K T ER0 Z
don't D OW1 N T
eleven IH0 L EH1 V AH0 N
exactly IH0 G Z AE1 K T L IY0
father F AA1 DH ER0
food F UW1 D
forget F ER0 G EH1 T
full F UH1 L
fun F AH1 N
get G EH1 T
go G OW1
good G UH1 D
got G AA1 T
green G R IY1 N
had HH AE1 D
happened HH AE1 P AH0 N D
has HH AE1 Z
hat HH AE1 T
have HH AE1 V
hot HH AA1 T
i AY1
i'm AY1 M
i've AY1 V
in IH0 N
is IH1 Z
it IH1 T
it's IH1 T S
jacket JH AE1 K AH0 T
jeep JH IY1 P
keep K IY1 P
knew N UW1
left L EH1 F T
let L EH1 T
letter L EH1 T ER0
like L AY1 K
lose L UW1 Z
man M AE1 N
map M AE1 P
maybe M EY1 B IY0
me M IY1
meet M IY1 T
meeting M IY1 T IH0 NG
men M EH1 N
minutes M IH1 N AH0 T S
move M UW1 V
my M AY1
need N IY1 D
new N UW1
night N AY1 T
o'clock AH0 K L AA1 K
of AH1 V
on AA1 N
pen P EH1 N
pool P UW1 L
pot P AA1 T
really R IH1 L IY0
red R EH1 D
rules R UW1 L Z
sad S AE1 D
said S EH1 D
sat S AE1 T
school S K UW1 L
seen S IY1 N
sent S EH1 N T
she SH IY1
shoe SH UW1
sleep S L IY1 P
slick S L IH1 K
some S AH1 M
soon S UW1 N
stop S T AA1 P
sue S UW1
sun S AH1 N
surface S ER1 F AH0 S
table T EY1 B AH0 L
tea T IY1
team T IY1 M
ten T EH1 N
that DH AE1 T
the DH AH0
think TH IH1 NG K
this DH IH1 S
three TH R IY1
threw TH R UW1
to T UW1
tom T AA1 M
tomorrow T AH0 M AA1 R OW2
top T AA1 P
up AH1 P
us AH1 S
want W AA1 N T
was W AA1 Z
way W EY1
we W IY1
we'll W IY1 L
what W AH1 T
why W AY1
will W IH1 L
wonder W AH1 N D ER0
would W UH1 D
you Y UW1
zoo Z UW1
"""

LEXICON: dict[str, tuple[str, ...]] = {
    line.split()[0]: tuple(line.split()[1:]) for line in _LEXICON_TEXT.strip().splitlines()
}

_IPA_BASE: dict[str, str] = {
    "AA": "ɑ",
    "AE": "æ",
    "AH": "ə",
    "AO": "ɔ",
    "AW": "aw",
    "AY": "aj",
    "EH": "ɛ",
    "ER": "ɚ",
    "EY": "ej",
    "IH": "ɪ",
    "IY": "i",
    "OW": "ow",
    "OY": "ɔj",
    "UH": "ʊ",
    "UW": "u",
    "B": "b",
    "CH": "tʃ",
    "D": "d",
    "DH": "ð",
    "F": "f",
    "G": "ɡ",
    "HH": "h",
    "JH": "dʒ",
    "K": "k",
    "L": "l",
    "M": "m",
    "N": "n",
    "NG": "ŋ",
    "P": "p",
    "R": "ɹ",
    "S": "s",
    "SH": "ʃ",
    "T": "t",
    "TH": "θ",
    "V": "v",
    "W": "w",
    "Y": "j",
    "Z": "z",
    "ZH": "ʒ",
}


def base_phone(phone: str) -> str:
    """ARPAbet phone without its stress digit: ``AH0`` -> ``AH``."""
    return phone.rstrip("012")


def stress(phone: str) -> int | None:
    """Stress digit of an ARPAbet vowel (0, 1, 2), None for a consonant."""
    return int(phone[-1]) if phone[-1] in "012" else None


def pronounce(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """(word, ARPAbet phones) for each word of ``text``; KeyError names a missing word."""
    out = []
    for word in words_of(text):
        if word not in LEXICON:
            raise KeyError(f"word {word!r} of sentence {text!r} is not in the demo lexicon")
        out.append((word, LEXICON[word]))
    return out


def to_ipa(phones: tuple[str, ...]) -> tuple[str, ...]:
    """english_mfa-style IPA for one word's ARPAbet phones (context decides vowel length)."""
    out = []
    for i, ph in enumerate(phones):
        base, st = base_phone(ph), stress(ph)
        ipa = _IPA_BASE[base]
        nxt = phones[i + 1] if i + 1 < len(phones) else None
        if base == "AH":
            ipa = "ə" if st == 0 else "ʌ"
        elif base == "ER":
            ipa = "ɚ" if st == 0 else "ɝ"
        elif st == 1 and base in ("IY", "UW"):
            ipa += "ː"
        elif st == 1 and base == "AA" and (nxt is None or base_phone(nxt) == "R"):
            ipa += "ː"
        out.append(ipa)
    return tuple(out)
