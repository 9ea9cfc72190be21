"""What `export` writes and `score` reads: the answer key's format, the tasks and their questions, the rater sheet's
columns and the package's file names."""

from __future__ import annotations

KEY_FORMAT = "gan-color-human-eval-key"
KEY_VERSION = 1
RATER_DIR, IMAGES_DIR, KEY_NAME = "rater", "images", "key.json"
TASKS = ("turing", "preference")
SIDES = ("left", "right")
QUESTIONS = {
    "turing": "One photo has its real colours, the other was colorized by a computer. Which one is the real photo?",
    "preference": "Both photos were colorized by a computer. Which one looks more natural?",
}
SHEET_COLUMNS = ("package", "trial", "question", "left_image", "right_image", "answer", "rater")
