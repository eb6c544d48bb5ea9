"""Word cues: backchannel tokens, questions and invitations, sentence ends, the minimal-response evidence
string (pipeline.measures). Pure functions of text."""

from __future__ import annotations

import re
from typing import Sequence

from pipeline.config import MeasuresConfig
from pipeline.records import TurnFeatures


_WORD_RE = re.compile(r"[a-z0-9']+")


def _norm_token(tok: str) -> str:
    """Lower-case, strip punctuation, fold hyphens ("Mm-hmm." -> "mmhmm")."""
    return re.sub(r"[^a-z0-9']", "", tok.lower().replace("-", ""))


def _tokens(text: str) -> list[str]:
    return [t for t in (_norm_token(x) for x in text.split()) if t]


def is_backchannel_text(text: str, cfg: MeasuresConfig) -> bool:
    """True when `text` is a short run of backchannel lexicon entries (at most `backchannel_max_words`
    words; multi-word entries such as "i see" count as their words). Empty text is not a backchannel."""
    toks = _tokens(text)
    if not toks or len(toks) > cfg.backchannel_max_words:
        return False
    entries = {tuple(_tokens(x)) for x in cfg.backchannel_lexicon if _tokens(x)}
    longest = max((len(e) for e in entries), default=1)
    i = 0
    while i < len(toks):  # greedy segmentation into lexicon entries, longest first
        for n in range(min(longest, len(toks) - i), 0, -1):
            if tuple(toks[i:i + n]) in entries:
                i += n
                break
        else:
            return False
    return True


# Words that (almost) never end a complete English utterance (articles, conjunctions, possessives,
# subject pronouns, "to" and most prepositions): a speaker who stops on one of these was cut off, whatever
# punctuation the ASR added.
_INCOMPLETE_END = frozenset("""
a an the to of and but or nor so because if when while although though unless whether than as whose
my your our their its i we they he she i'm you're we're they're it's there's that's with from
into onto by for
""".split())


def _complete_unit(last_word: str, uses_punct: bool) -> bool:
    """Is a speaker's last word a likely completion point? Incomplete after a function word; with a
    punctuated transcript, complete only with terminal punctuation."""
    tok = _norm_token(last_word)
    if tok in _INCOMPLETE_END:
        return False
    if uses_punct:
        return _ends_sentence(last_word)
    return True


_WH = ("what", "why", "how", "when", "where", "who", "whom", "whose", "which")
_AUX = ("do", "does", "did", "are", "is", "was", "were", "can", "could", "would", "will", "should", "have",
        "has", "had", "may", "might", "shall", "am", "isn't", "aren't", "don't", "doesn't", "didn't",
        "won't", "wouldn't", "can't", "couldn't", "haven't", "hasn't")
_SUBJECTS = ("i", "you", "we", "they", "he", "she")


def _opens_wh_question(toks: Sequence[str], i: int) -> bool:
    """Does a wh-question start at token i? A wh-word, or one contracted with "is"/"has" ("what's"), but
    not a wh-word followed by a subject pronoun, alone or contracted ("what you're describing is ...",
    "how I see it"): that is a free relative or an embedded clause, not an inverted question."""
    w = toks[i]
    if w.split("'")[0] not in _WH:
        return False
    nxt = toks[i + 1] if i + 1 < len(toks) else ""
    return not (w in _WH and nxt.split("'")[0] in _SUBJECTS)


_INVITE = (
    "tell me", "say more", "talk about", "talk more", "tell us", "walk me through", "i wonder", "i'm wondering",
    "im wondering", "i was wondering", "help me understand", "describe", "what's that like", "whats that like",
    "go on", "share", "let's talk", "lets talk", "can you", "could you", "would you", "will you",
    "do you want", "how about", "what about", "any thoughts", "curious", "explain",
)
_TAGS = ("right", "yeah", "no", "okay", "ok", "huh", "isn't it", "don't you", "aren't you", "didn't you",
         "wouldn't you", "isn't that", "you know what i mean")
_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+")


def is_question_or_invitation(text: str) -> bool:
    """Is the end of `text` a question or an invitation to speak?

    Works on Whisper text (with punctuation: a "?" ending the last or next-to-last sentence) and on
    transcripts without punctuation: the last sentence (or, with no punctuation, the last 12 words) starts
    with a wh-word or an inverted auxiliary ("do you", "can you"), contains an invitation phrase ("tell me",
    "I wonder", "can you", "say more"), or ends in a question tag ("..., right", "isn't it")."""
    t = text.strip()
    if not t:
        return False
    sentences = [s for s in _SENT_SPLIT.split(t) if s.strip()]
    if any(s.rstrip().endswith("?") for s in sentences[-2:]):
        return True
    has_punct = bool(re.search(r"[.!?,]", t))
    last = sentences[-1] if has_punct else t
    toks = [x for x in _WORD_RE.findall(last.lower())]
    if not has_punct:
        toks = toks[-12:]
    if not toks:
        return False
    joined = " ".join(toks)
    clause_starts = [0]
    # clause starts: after commas in punctuated text; in unpunctuated text any wh/aux position near the end
    if has_punct:
        for part in re.split(r"[,;:]", last)[1:]:
            pt = _WORD_RE.findall(part.lower())
            if pt:
                clause_starts.append(len(toks) - len(pt))
    else:
        clause_starts = list(range(max(0, len(toks) - 8), len(toks)))
    for i in clause_starts:
        if i < 0 or i >= len(toks):
            continue
        w0 = toks[i]
        w1 = toks[i + 1] if i + 1 < len(toks) else ""
        if _opens_wh_question(toks, i) and (has_punct or i + 1 < len(toks)):
            return True
        if w0 in _AUX and w1 in ("you", "we", "i", "it", "that", "this", "they", "he", "she", "there", "your"):
            return True
    if any(re.search(rf"\b{re.escape(p)}\b", joined) for p in _INVITE):
        return True
    if has_punct and any(re.search(rf",\s*{re.escape(tag)}\W*$", last.lower()) for tag in _TAGS):
        return True
    return False


def _ends_sentence(text: str) -> bool:
    return text.rstrip().rstrip("\"')]").endswith((".", "?", "!", "…"))


def minimal_response_evidence(feature: TurnFeatures) -> str:
    """Measurement string for a minimal-response cue (no transcript text)."""
    lat = "n/a" if feature.latency_s is None else f"{feature.latency_s:.1f} s"
    return f"{feature.word_count} word(s) after a question/invitation; latency {lat}"
