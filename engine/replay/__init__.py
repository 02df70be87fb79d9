"""Replay of recorded sessions into PitWall at N x real time."""
