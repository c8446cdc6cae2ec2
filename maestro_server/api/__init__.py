"""The public API: conversion to and from the `maestro.v1` messages (and, later, the server)."""
