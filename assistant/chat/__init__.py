"""Conversations over answers: a conversation's turns and memory, saved sessions, transcripts.

Stage 7: may import `answer` and every stage below.
"""
