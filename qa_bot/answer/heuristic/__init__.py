"""The fallback extractor (used when no reader weights load). Short extractive answers: pick the clause or sentence of a retrieved passage that answers
a question.

Pipeline: classify the question (what kind of answer is wanted) → extract the question's
content terms and its shape (the wording left and right of the wh-phrase) → split the top
passages into sentences and clauses → score windows by
  * term coverage (idf-weighted, with the sentence's neighbourhood as context),
  * character-level alignment: how much of the question's wording the sentence repeats
    (long common substrings count most; words shared by most sentences count less),
  * the wh-slot: the text between the sentence's match of the question's left part and of
    its right part ("生命数耗完即算为什么" ↔ "…即算为踢爆"),
  * a typed span of the wanted kind (figure, date, name, place, list, cause, verdict),
    its proximity to the matched terms, minus names that merely repeat the question's
    subject,
  * the passage's retrieval rank;
→ return the best window verbatim (with its sentence-final "。" when it ends the sentence):
the clause(s) with the span for figures, dates, names and places, the whole sentence for
descriptions, reasons, lists and the rest; always within ``max_chars``.

Everything is regex/heuristic based and general: no lists tuned to particular questions.
Numbers, dates and names are always taken verbatim from the source and never cut.

Parts: ``terms`` (the question's words and weights), ``align`` (character alignment and the
wh-slot), ``question`` (the question analysed once), ``windows`` (candidate windows and the
final answer window), ``scoring`` (window features and their weights), ``extract`` (the
driver and the confidence).
"""

from .extract import extract_answer
from .scoring import FEATURES, WEIGHTS
from .terms import content_terms

__all__ = ["FEATURES", "WEIGHTS", "content_terms", "extract_answer"]
