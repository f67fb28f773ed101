"""The quality-pass switch compiled runners read: on only inside the block, off again after it, even on error."""
import pytest

from workbench.runtime.compiled_shapes import reuse_compiled_shapes, reusing_compiled_shapes


def test_the_switch_is_on_only_inside_the_block():
    assert not reusing_compiled_shapes()
    with reuse_compiled_shapes():
        assert reusing_compiled_shapes()
        with reuse_compiled_shapes():
            assert reusing_compiled_shapes()
        assert reusing_compiled_shapes()
    assert not reusing_compiled_shapes()
    with pytest.raises(RuntimeError), reuse_compiled_shapes():
        raise RuntimeError("an evaluation that fails")
    assert not reusing_compiled_shapes()
