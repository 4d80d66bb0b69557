"""The seed field: seeds go up to 2**64 - 1, past what a QSpinBox holds, so they are typed digits.

Bound to a seed policy (the presentation model's random toggle and last seed, in the prompt
panel) it shows "Random" and "Reuse"; unbound (inside a node) a die draws one new seed.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRegularExpression, QSignalBlocker
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import QCheckBox, QLineEdit, QToolButton

from studio.graph.spec import MAX_SEED, Param, random_seed
from studio.ui.fields.base import FIELD_HEIGHT, Field, row


class SeedField(Field):
    def __init__(self, param: Param, compact: bool = False, rules: Any = None) -> None:
        self.line = QLineEdit("0")
        self.line.setValidator(QRegularExpressionValidator(QRegularExpression(r"[0-9]{0,20}")))
        self.rules: Any = None
        if rules is None:
            self.dice = QToolButton()
            self.dice.setText("⚄")
            self.dice.setToolTip("A new random seed")
            if compact:
                self.dice.setFixedSize(FIELD_HEIGHT, FIELD_HEIGHT)
            super().__init__(param, row(compact, self.line, self.dice), compact)
            self.dice.clicked.connect(lambda: self._commit(random_seed()))
        else:
            self.random = QCheckBox("Random")
            self.random.setToolTip("Draw a new seed for every run")
            self.reuse = QToolButton()
            self.reuse.setText("↺")
            self.reuse.setObjectName("reuse-seed")
            self.reuse.setToolTip("Use the seed of the last run again (and stop drawing new ones)")
            self.reuse.setEnabled(False)
            super().__init__(param, row(compact, self.line, self.random, self.reuse), compact)
            self.random.toggled.connect(self._random_toggled)
            self.reuse.clicked.connect(self._reuse)
            self.bind(rules)
        self._sized(self.line)
        self.line.editingFinished.connect(self._typed)

    def bind(self, rules: Any) -> None:
        """Show and change the seed policy of `rules` (the presentation model)."""
        self.rules = rules
        with QSignalBlocker(self.random):
            self.random.setChecked(bool(rules.random_seed))
        self.line.setEnabled(not rules.random_seed)
        self._show_last()

    @property
    def last_seed(self) -> int | None:
        return None if self.rules is None else self.rules.last_seed

    def value(self) -> int:
        text = self.line.text().strip()
        return min(int(text), MAX_SEED) if text else 0

    def set_value(self, value: Any) -> None:
        if self.line.text() != str(value):
            self.line.setText(str(value))

    def next_seed(self, current: int) -> int:
        """The seed for the next run (from the bound policy), shown in the box."""
        seed = int(current) if self.rules is None else self.rules.next_seed(current)
        self.line.setText(str(seed))  # so a drawn seed can be read (and copied) from the box
        if self.rules is not None:
            self._show_last()
        return seed

    def _commit(self, seed: int) -> None:
        self.set_value(seed)
        self._emit(seed)

    def _typed(self) -> None:
        self._commit(self.value())

    def _show_last(self) -> None:
        seed = self.last_seed
        self.reuse.setEnabled(seed is not None)
        if seed is not None:
            self.reuse.setToolTip(f"Use seed {seed} again")

    def _random_toggled(self, on: bool) -> None:
        self.rules.random_seed = on
        self.line.setEnabled(not on)
        if not on:
            self._typed()  # the box shows the last seed drawn: that is the seed from now on

    def _reuse(self) -> None:
        seed = self.last_seed
        if seed is not None:
            self.random.setChecked(False)
            self._commit(seed)
