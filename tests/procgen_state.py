"""Read and write the state bytes of procgen's standard ``maze`` and ``chaser`` (``env.get_state()``
/ ``env.set_state()``), written from the C++ ``serialize`` methods (Game, BasicAbstractGame,
Entity, MazeGame, Chaser; see shared/procgen-facts.md section 1).

``decode(buf)`` gives a dict of every field in order; ``encode(fields)`` gives the bytes back
(byte-identical for an unedited state). Ints and bools are 4-byte little-endian, floats
float32, strings a length then the raw bytes; the three RNG states are strings of varying
length, so fields have no fixed offsets.
"""

from __future__ import annotations

import struct

import numpy as np

END_OF_BUFFER = 0xCAFECAFE
OPTIONS = ("paint_vel_info", "use_generated_assets", "use_monochrome_assets", "restrict_themes", "use_backgrounds",
           "center_agent", "debug_mode", "distribution_mode", "use_sequential_levels", "use_easy_jump",
           "plain_assets", "physics_mode")
# an entity's 31 fields (entity.cpp): i int, f float32
ENTITY = tuple(f.split(":") for f in (
    "x:f y:f vx:f vy:f rx:f ry:f type:i image_type:i image_theme:i render_z:i will_erase:i collides:i "
    "collision_margin:f rotation:f vrot:f is_reflected:i fire_time:i spawn_time:i life_time:i expire_time:i "
    "use_abs_coords:i friction:f smart_step:i avoids_collisions:i auto_erase:i alpha:f health:f theta:f "
    "grow_rate:f alpha_decay:f climber_spawn_x:f").split())
# the state's fields in order: i int, f float32, s string, r RNG (seeded flag and text), E entities, G grid
LAYOUT = tuple(f.split(":") for f in (
    "version:i game_name:s " + " ".join(f"{o}:i" for o in OPTIONS) + " grid_step:i level_seed_low:i "
    "level_seed_high:i game_type:i game_n:i level_seed_rand_gen:r rand_gen:r reward:f done:i level_complete:i "
    "action:i timeout:i current_level_seed:i prev_level_seed:i episodes_remaining:i episode_done:i "
    "last_reward_timer:i last_reward:f default_action:i fixed_asset_seed:i cur_time:i is_waiting_for_step:i "
    "grid_size:i entities:E use_procgen_background:i background_index:i bg_tile_ratio:f bg_pct_x:f char_dim:f "
    "last_move_action:i move_action:i special_action:i mixrate:f maxspeed:f max_jump:f action_vx:f "
    "action_vy:f action_vrot:f center_x:f center_y:f random_agent_start:i has_useful_vel_info:i "
    "step_rand_int:i asset_rand_gen:r main_width:i main_height:i out_of_bounds_object:i unit:f view_dim:f "
    "x_off:f y_off:f visibility:f min_visibility:f grid:G").split())
# each game's own fields, then procgen's end-of-buffer word (V: a vector of ints or bools)
TAILS = {
    "maze": "maze_dim:i world_dim:i end:i",
    "chaser": "free_cells:V is_space:V eat_timeout:i egg_timeout:i eat_time:i total_enemies:i "
              "total_orbs:i orbs_collected:i maze_dim:i end:i",
}


def _layout(game: str) -> tuple:
    return LAYOUT + tuple(f.split(":") for f in TAILS[game].split())


class _Reader:
    def __init__(self, buf: bytes):
        self.buf, self.pos = buf, 0

    def take(self, fmt: str):
        vals = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return vals

    def string(self) -> bytes:
        (n,) = self.take("i")
        self.pos += n
        return self.buf[self.pos - n : self.pos]


def decode(buf: bytes, game: str = "maze") -> dict:
    """Every field of a ``game`` state (maze or chaser); ``entities`` a list of dicts, ``grid``
    int32 (h, w) with row = world y (row 0 is the bottom of the picture)."""
    r, out = _Reader(buf), {}
    for name, kind in _layout(game):
        if kind in "if":
            (out[name],) = r.take(kind)
        elif kind == "s":
            out[name] = r.string()
        elif kind == "r":
            out[name] = (r.take("i")[0], r.string())
        elif kind == "E":
            (count,) = r.take("i")
            out[name] = [{k: r.take(t)[0] for k, t in ENTITY} for _ in range(count)]
        elif kind == "V":
            (n,) = r.take("i")
            out[name] = r.take(f"{n}i")
        else:
            w, h, n = r.take("3i")
            out[name] = np.array(r.take(f"{n}i"), dtype=np.int32).reshape(h, w)
    if r.pos != len(buf) or out["end"] & 0xFFFFFFFF != END_OF_BUFFER or out["game_name"] != game.encode():
        raise ValueError(f"not a {game} state: read {r.pos} of {len(buf)} bytes")
    return out


def encode(fields: dict, game: str = "maze") -> bytes:
    """The state bytes of ``decode``'s dict (edited or not)."""
    parts = []
    for name, kind in _layout(game):
        v = fields[name]
        if kind in "if":
            parts.append(struct.pack("<" + kind, v))
        elif kind == "s":
            parts.append(struct.pack("<i", len(v)) + v)
        elif kind == "r":
            parts.append(struct.pack("<ii", v[0], len(v[1])) + v[1])
        elif kind == "E":
            parts.append(struct.pack("<i", len(v)))
            parts += [struct.pack("<" + "".join(t for _, t in ENTITY), *(e[k] for k, _ in ENTITY)) for e in v]
        elif kind == "V":
            parts.append(struct.pack(f"<i{len(v)}i", len(v), *v))
        else:
            g = np.ascontiguousarray(v, dtype="<i4")
            parts.append(struct.pack("<3i", g.shape[1], g.shape[0], g.size) + g.tobytes())
    return b"".join(parts)
