def resample(*args, **kwargs):
    raise NotImplementedError("stand-in torchaudio (tests/_stubs): resample is not available")
