"""The stack's alarm topic (AlarmEmail subscribes to it): a message in words for a person.

What is published is written by application.pause from the pause's own words (no
e-mail, no name: contact ids and counts at most)."""

from __future__ import annotations

from typing import Any

SUBJECT_MAX = 100
"""SNS refuses a longer subject."""


class AlarmTopic:
    def __init__(self, sns: Any, topic_arn: str) -> None:
        self._sns = sns
        self._topic_arn = topic_arn

    def tell(self, subject: str, message: str) -> None:
        if not self._topic_arn:
            return  # no topic (a test or a tool without one): the log says it anyway
        self._sns.publish(TopicArn=self._topic_arn, Subject=subject[:SUBJECT_MAX], Message=message)
