"""tutorial.HelloService: greetings in all four streaming shapes."""

from __future__ import annotations

from types import ModuleType

import grpc

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


def register(server: grpc.Server, gen: ModuleType) -> list[str]:
    mods = proto_module(gen, "hello", SERVICE)
    if mods is None:
        return []
    pb2, pb2_grpc = mods
    pb2_grpc.add_HelloServiceServicer_to_server(HelloService(pb2), server)
    return [SERVICE]
