"""tutorial.HelloService: greetings in all four streaming shapes."""

from __future__ import annotations

from types import ModuleType


from python_impl.seeds._common import proto_module

SERVICE = "tutorial.HelloService"


def split_words(greeting: str) -> list[str]:
    # ASCII space only: str.split() would also split on tabs and Unicode spaces, which Go's
    # strings.Split(s, " ") does not.
    return [w for w in greeting.split(" ") if w]


def join_greetings(greetings: list[str]) -> str:
    return "hello " + ", ".join(greetings)


class HelloService:
    def __init__(self, pb2: ModuleType) -> None:
        self._pb2 = pb2

    def SayHello(self, request, context):
        return self._pb2.HelloResponse(reply="hello " + request.greeting)

    def LotsOfReplies(self, request, context):
        for word in split_words(request.greeting):
            yield self._pb2.HelloResponse(reply="hello " + word)

    def LotsOfGreetings(self, request_iterator, context):
        return self._pb2.HelloResponse(reply=join_greetings([r.greeting for r in request_iterator]))

    def BidiHello(self, request_iterator, context):
        # A generator answering each request as it is pulled gives strict ping-pong.
        for r in request_iterator:
            yield self._pb2.HelloResponse(reply="hello " + r.greeting)


def servicer(gen: ModuleType) -> HelloService | None:
    """The seed servicer over the generated package `gen`, or None when its proto is not there."""
    mods = proto_module(gen, "hello", SERVICE)
    return None if mods is None else HelloService(mods[0])
