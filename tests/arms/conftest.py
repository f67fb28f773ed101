import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))   # the fake arms and the recipe, importable by the tests
