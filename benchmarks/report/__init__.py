"""The leaderboard, from records alone (no torch, no condenser is imported):

- :mod:`.records`: read run folders, put records in today's terms, key them into cells and tables;
- :mod:`.tables`: groups, statistics, the stored time-to-accuracy, speedups and byte matches;
- :mod:`.scores`: DD-Ranking's HLR, IOR, LRS and ARS;
- :mod:`.render`: Markdown, CSV and the HTML page (``page.html``);
- :mod:`.plots`: the page's figures;
- :mod:`.build`: all of it into one folder.
"""
from .build import build
from .records import DuplicateRecords, load_records, measured_on, normalise
from .tables import aggregate, paper_aggregate

__all__ = ["DuplicateRecords", "aggregate", "build", "load_records", "measured_on", "normalise", "paper_aggregate"]
