"""The error every app raises for a request it refuses: a `code` from the contract, a readable `detail`, the HTTP
status it maps to (core.api_errors shapes the body), and any extra fields the answer carries (`errors`, `ids`...)."""


class TandemError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, detail: str, **extra):
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
