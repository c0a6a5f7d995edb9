"""Kinetic parameters of BA/AIBN solution polymerization in toluene: the one table of rate coefficients.

Conventions (docs/simulator.md):

* Termination uses the IUPAC "2 kt" convention: the radical loss rate of SPR-SPR termination is
  ``-d[SPR]/dt = 2 kt_ss [SPR]^2``; SPR-MCR cross termination removes ``2 kt_st [SPR][MCR]`` SPR *and*
  ``2 kt_st [SPR][MCR]`` MCR per litre and second (Nikitin/Barth convention); MCR-MCR removes
  ``2 kt_tt [MCR]^2``. So the total radical loss is ``2 kt_ss S^2 + 4 kt_st S T + 2 kt_tt T^2`` and, with
  one radical type, ``R_i = 2 f kd [I] = 2 kt [R]^2``.
* Transfer to monomer and to solvent is written as chain-transfer constants relative to the SPR
  propagation coefficient (``k_tr,M = C_M kp``), so the transfer coefficients share the Arrhenius
  activation energy of kp. MCRs transfer to toluene with ``C_S_mcr * kpt`` (a calibrated sink, see its
  source); MCR transfer to monomer is neglected. A transferred radical starts a new chain (no net
  radical change).
* β-scission of MCRs is neglected (60-80 °C, docs/simulator.md): backbiting does not cut chains; it only
  parks radicals in the slowly propagating MCR state.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from polyinv.schema import M_MONOMER

#: Gas constant, J/(mol K).
R_GAS = 8.314462618
#: Molar mass of toluene, g/mol.
M_TOLUENE = 92.14


@dataclass(frozen=True)
class RateCoefficient:
    """An Arrhenius rate coefficient ``A exp(-Ea / (R T))`` with the source of its numbers."""

    A: float
    Ea: float  # kJ/mol
    unit: str
    source: str

    def at(self, temp_c):
        """Value at ``temp_c`` (°C; scalar or numpy array)."""

        return self.A * np.exp(-self.Ea * 1e3 / (R_GAS * (np.asarray(temp_c, dtype=float) + 273.15)))


#: Fields of the gel-effect term: stated in a file's metadata only where the term is on.
GEL_FIELDS = (
    "gel_A",
    "Tg_monomer",
    "Tg_polymer",
    "Tg_solvent",
    "alpha_monomer",
    "alpha_polymer",
    "alpha_solvent",
    "rho_polymer",
)


@dataclass(frozen=True)
class KineticParameters:
    """Every coefficient of the kinetic scheme, with its source.

    Mechanisms are switched off through real parameters (``dataclasses.replace``): ``kbb`` with ``A=0``
    removes backbiting, ``C_M = C_S = 0`` removes transfer, ``comb_*`` = 0 or 1 selects pure
    disproportionation or pure combination, ``initiator_consumption=False`` holds [I] at [I]0.
    """

    kd: RateCoefficient = RateCoefficient(
        2.89e15, 130.23, "1/s", "AKZO Nobel catalogue, AIBN (Perkadox AIBN): 4.33e-5 1/s at 70 °C"
    )
    kp: RateCoefficient = RateCoefficient(
        2.21e7, 17.9, "L/(mol s)", "IUPAC benchmark, Asua et al. 2004 (SPR propagation)"
    )
    kbb: RateCoefficient = RateCoefficient(
        1.2e8,
        34.7,
        "1/s",
        "Nikitin et al. 2007 (as commonly quoted A=1.6e8 1/s, Ea=34.7 kJ/mol); A lowered to 1.2e8 "
        "(kbb(70 °C) 836 -> 627 1/s, a 25 % change, inside the scatter of published kbb) for the "
        "calibration target MCR fraction 70-90 % at 70 °C, [BA] 0.5-2.5 mol/L (Willemse et al. 2005)",
    )
    kpt: RateCoefficient = RateCoefficient(
        9.2e5, 28.3, "L/(mol s)", "Nikitin et al. 2007 (MCR propagation), as commonly quoted"
    )
    kt_ss: RateCoefficient = RateCoefficient(
        1.35e10,
        8.4,
        "L/(mol s)",
        "calibrate: chain-length-averaged SPR-SPR termination (7.1e8 at 70 °C); Ea = 8.4 kJ/mol, viscous "
        "flow of toluene (diffusion control). The three kt are scaled together so that ~20 % of the "
        "432-recipe grid reaches 90 % conversion before 3600 s (study: 86/432; here 88/432); the overall "
        "<kt> = R_i / (2 [R]^2) is ~7e7 L/(mol s) at 70 °C, the order reported for BA in toluene",
    )
    kt_st: RateCoefficient = RateCoefficient(
        2.7e9,
        8.4,
        "L/(mol s)",
        "calibrate: SPR-MCR cross termination = kt_ss / 5 (Barth et al. 2010: kt_st below kt_ss)",
    )
    kt_tt: RateCoefficient = RateCoefficient(
        2.7e8,
        8.4,
        "L/(mol s)",
        "calibrate: MCR-MCR termination = kt_ss / 50 (tertiary radicals terminate slowly)",
    )
    comb_ss: float = 0.9  # fraction of SPR-SPR terminations by combination
    comb_st: float = 0.5  # fraction of SPR-MCR terminations by combination
    comb_tt: float = 0.1  # fraction of MCR-MCR terminations by combination
    f_temps: tuple[float, ...] = (60.0, 70.0, 80.0)  # °C
    f_values: tuple[float, ...] = (0.64, 0.68, 0.72)  # Buback et al. 1994
    f_bounds: tuple[float, float] = (0.1, 0.95)  # clip of the linear extrapolation outside 60-80 °C
    C_M: float = 1.0e-4  # transfer to monomer / kp (literature order of magnitude)
    C_S: float = 2.0e-4  # transfer of SPR to toluene / kp (literature 1-3e-4)
    C_S_mcr: float = 0.16  # transfer of MCR to toluene / kpt (calibrate, see sources_misc)
    monomer_molar_mass: float = M_MONOMER  # g/mol (n-butyl acrylate); M = chain length x this
    rho_monomer: float = 0.894  # g/mL, density of the monomer (n-butyl acrylate)
    rho_solvent: float = 0.867  # g/mL, density of toluene
    M_solvent: float = M_TOLUENE  # g/mol
    initiator_consumption: bool = True  # False holds [I] constant (analytic-limit checks)
    # chain-length-dependent termination, kt = kt_ref (nu / nu_ref)^-alpha_t with nu the mean length of the growing
    # chains; 0 (polyinv's scheme: chain-length-averaged kt). A calibration may set it (0-0.8: composite-model
    # exponents, alpha_l ~0.16 for long chains to alpha_s ~0.5-0.85 for short ones, Johnston-Hall & Monteiro
    # 2008, Barner-Kowollik & Russell 2009); nu_ref 500 lies inside the design's kinetic chain lengths, so the
    # kt above stay the rates of typical chains
    alpha_t: float = 0.0
    nu_ref: float = 500.0
    # gel effect (diffusion-controlled termination at high polymer content), free-volume form
    # kt = kt0 exp(-gel_A (1/Vf - 1/Vf0)), Vf = sum_i phi_i (0.025 + alpha_i (T - Tg_i)) over monomer, polymer and
    # solvent volume fractions (Marten & Hamielec 1982; the 0.025 + alpha (T - Tg) free volumes of Bueche). 0: none
    # (the study's acrylate in dilute toluene: its figures are made without one)
    gel_A: float = 0.0
    Tg_monomer: float = 167.0  # K (MMA's; unused while gel_A is 0)
    Tg_polymer: float = 387.0  # K
    Tg_solvent: float = 113.0  # K, toluene
    alpha_monomer: float = 1.0e-3  # 1/K, thermal expansion of the free volume
    alpha_polymer: float = 4.8e-4
    alpha_solvent: float = 1.0e-3
    rho_polymer: float = 1.18  # g/mL
    # the measurement, not the kinetics: how a lab's GPC reports the distribution. gpc_mass multiplies every molar
    # mass (polystyrene-equivalent calibration of another polymer: x0.5-2); gpc_spread (decades) is a Gaussian
    # band broadening in log10 M (Mw x exp(s²/2), Mn x exp(-s²/2), s = spread ln 10). 1 and 0: the true masses
    gpc_mass: float = 1.0
    gpc_spread: float = 0.0
    sources_misc: dict[str, str] = field(
        default_factory=lambda: {
            "comb": "calibrate: SPR-SPR termination mostly combination, MCR-involving mostly disproportionation "
            "(acrylate literature); fixes Mw/Mn within 1.5-4",
            "f": "Buback et al. 1994: 0.64 (60 °C), 0.68 (70 °C), 0.72 (80 °C); linear in T (the three points "
            "are collinear), extrapolated linearly and clipped to f_bounds outside",
            "C_M": "literature order of magnitude 1e-4, same Ea as kp",
            "C_S": "toluene, literature 1-3e-4, same Ea as kp",
            "C_S_mcr": "calibrate, no direct measurement: H-abstraction from toluene by MCRs, relative to kpt "
            "(7.2 L/(mol s) at 70 °C, below the SPR value 8.3). Without an MCR sink that does not "
            "scale with [BA], MCR/SPR = kbb/(kpt [BA]) varies 5-fold over 0.5-2.5 mol/L and no "
            "kbb/kpt puts the MCR fraction inside 70-90 % at both ends; with it the fraction is "
            "79-88 % (Willemse et al. 2005: ~80 %, weakly dependent on [BA])",
            "solvent": "[S] = (1 - [BA]0 * V_BA) / V_tol with molar volumes M/rho; constant during the run "
            "(polymer replaces monomer volume, shrinkage neglected)",
        },
        compare=False,
    )

    # ----------------------------------------------------------------------------------------------
    @property
    def molar_volume_monomer(self) -> float:
        """Molar volume of the monomer, L/mol."""
        return self.monomer_molar_mass / (self.rho_monomer * 1000.0)

    @property
    def molar_volume_polymer(self) -> float:
        """Volume of one polymerised monomer unit, L/mol."""
        return self.monomer_molar_mass / (self.rho_polymer * 1000.0)

    @property
    def molar_volume_solvent(self) -> float:
        """Molar volume of toluene, L/mol."""
        return self.M_solvent / (self.rho_solvent * 1000.0)

    @property
    def max_cBA(self) -> float:
        """Concentration of pure monomer, mol/L: no recipe can exceed it."""
        return 1.0 / self.molar_volume_monomer

    @property
    def backbiting(self) -> bool:
        """Whether the scheme forms mid-chain radicals (acrylates)."""
        return self.kbb.A > 0.0

    def solvent_concentration(self, cBA_0):
        """Solvent concentration, mol/L, from the volume balance (no excess volume)."""

        return (1.0 - np.asarray(cBA_0, dtype=float) * self.molar_volume_monomer) / self.molar_volume_solvent

    def efficiency(self, temp_c):
        """Initiator efficiency f(T): linear interpolation, linear extrapolation, clipped to f_bounds."""

        t = np.asarray(temp_c, dtype=float)
        slope = (self.f_values[-1] - self.f_values[0]) / (self.f_temps[-1] - self.f_temps[0])
        inside = np.interp(t, self.f_temps, self.f_values)
        outside = self.f_values[0] + slope * (t - self.f_temps[0])
        inner = (t >= self.f_temps[0]) & (t <= self.f_temps[-1])
        return np.clip(np.where(inner, inside, outside), *self.f_bounds)

    def replace(self, **changes) -> KineticParameters:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def metadata(self) -> list[tuple[str, str]]:
        """Key/value rows describing every parameter and its source (for the data file's metadata)."""
        rows: list[tuple[str, str]] = [
            (
                "kt_convention",
                "radical loss = 2 kt_ss S^2 + 4 kt_st S T + 2 kt_tt T^2 (IUPAC 2kt convention); "
                "R_i = 2 f kd [I]",
            ),
        ]
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, RateCoefficient):
                rows.append((f"{f.name}.A", repr(value.A)))
                rows.append((f"{f.name}.Ea_kJ_per_mol", repr(value.Ea)))
                rows.append((f"{f.name}.unit", value.unit))
                rows.append((f"{f.name}.source", value.source))
            elif f.name == "sources_misc":
                rows.extend((f"source.{k}", v) for k, v in value.items())
            elif f.name in ("alpha_t", "nu_ref") and self.alpha_t == 0.0:
                continue  # no chain-length-dependent termination: files state none (as before it existed)
            elif f.name in GEL_FIELDS and self.gel_A == 0.0:
                continue  # no gel effect: files state none (as before it existed)
            elif (f.name, value) in (("gpc_mass", 1.0), ("gpc_spread", 0.0)):
                continue  # the true molar masses: files state no measurement model
            else:
                rows.append((f.name, repr(value)))
        return rows


DEFAULT_PARAMETERS = KineticParameters()

_AIBN_KD = DEFAULT_PARAMETERS.kd  # the same initiator in every system; its efficiency rule too (f below)
_OFF = (
    "switched off: methacrylate and styryl radicals are not acrylates; no backbiting, no mid-chain radicals"
)
_UNUSED = "unused: no mid-chain radicals (kbb 0); kt_ss's value"
# finite, so that the radical balances stay well defined with no mid-chain radicals (they multiply T = 0)
_UNUSED_KPT = RateCoefficient(
    1.0, 0.0, "L/(mol s)", "unused: no mid-chain radicals (kbb 0); a finite placeholder"
)

#: MMA/AIBN in toluene. Propagation is the IUPAC benchmark; termination is the low-conversion <kt> (no
#: chain-length dependence, alpha_t 0, which a calibration may set); the gel effect is on (free-volume form): above
#: ~30 % polymer by volume MMA's kt falls by decades (Trommsdorff effect), in 50 % toluene from ~50 % conversion.
#: Glass effect on propagation and depropagation (negligible below ~100 °C) are not modelled.
MMA_PARAMETERS = KineticParameters(
    kp=RateCoefficient(
        2.67e6,
        22.36,
        "L/(mol s)",
        "IUPAC benchmark, Beuermann et al. 1997 (Macromol. Chem. Phys. 198, 1545): log10 A 6.427, Ea 22.36 kJ/mol",
    ),
    kbb=RateCoefficient(0.0, 0.0, "1/s", _OFF),
    kpt=_UNUSED_KPT,
    kt_ss=RateCoefficient(
        1.725e9,
        9.0,
        "L/(mol s)",
        "6.7e7 at 60 °C: kp^2/kt = 0.0104 L/(mol s) of MMA at 60 °C, low conversion (Odian 2004, table 3-11: "
        "kp 515, kt 2.55e7) with the IUPAC kp 833; Ea 9 kJ/mol from kt(1,1) of MMA (Barth et al. 2009, "
        "SP-PLP-EPR). As commonly quoted; a calibration should fit it",
    ),
    kt_st=RateCoefficient(1.725e9, 9.0, "L/(mol s)", _UNUSED),
    kt_tt=RateCoefficient(1.725e9, 9.0, "L/(mol s)", _UNUSED),
    comb_ss=0.3,
    comb_st=0.5,
    comb_tt=0.5,
    C_M=1.0e-5,
    C_S=2.0e-5,
    C_S_mcr=0.0,
    monomer_molar_mass=100.12,
    rho_monomer=0.936,
    gel_A=1.0,
    Tg_monomer=167.0,
    Tg_polymer=387.0,
    rho_polymer=1.18,
    sources_misc={
        "comb": "Moad & Solomon 2006: MMA radicals terminate mostly by disproportionation (ktd/kt 0.6-0.8 at "
        "25-90 °C); 0.3 by combination",
        "f": "AIBN as in the acrylate system (Buback et al. 1994: 0.64-0.72 at 60-80 °C); 0.5-0.7 reported in MMA",
        "C_M": "Polymer Handbook: MMA 0.7-2.5e-5 at 60 °C; same Ea as kp",
        "C_S": "Polymer Handbook: toluene in MMA ~2e-5 at 60 °C; same Ea as kp",
        "gel": "free-volume gel effect (Marten & Hamielec 1982 form, without their critical point): Tg and "
        "expansion coefficients of MMA 167 K / 1e-3, PMMA 387 K / 4.8e-4, toluene 113 K / 1e-3 as commonly "
        "quoted; gel_A 1.0 is a guess of the order fitted for MMA (0.5-2): calibrate it",
        "solvent": "[S] = (1 - [M]0 * V_M) / V_tol with molar volumes M/rho; constant during the run",
    },
)

#: Styrene/AIBN in toluene. Thermal self-initiation (significant above ~100 °C) is not modelled; the gel effect is
#: weaker than MMA's (on, free-volume form).
STY_PARAMETERS = KineticParameters(
    kp=RateCoefficient(
        4.27e7,
        32.51,
        "L/(mol s)",
        "IUPAC benchmark, Buback et al. 1995 (Macromol. Chem. Phys. 196, 3267): log10 A 7.63, Ea 32.51 kJ/mol",
    ),
    kbb=RateCoefficient(0.0, 0.0, "1/s", _OFF),
    kpt=_UNUSED_KPT,
    kt_ss=RateCoefficient(
        1.8e9,
        8.0,
        "L/(mol s)",
        "1.0e8 at 60 °C: the order of styrene's low-conversion <kt> (Beuermann & Buback 2002 review, 1-2e8 at "
        "60 °C); Ea 8 kJ/mol (diffusion control). As commonly quoted; a calibration should fit it",
    ),
    kt_st=RateCoefficient(1.8e9, 8.0, "L/(mol s)", _UNUSED),
    kt_tt=RateCoefficient(1.8e9, 8.0, "L/(mol s)", _UNUSED),
    comb_ss=0.9,
    comb_st=0.5,
    comb_tt=0.5,
    C_M=6.0e-5,
    C_S=1.25e-5,
    C_S_mcr=0.0,
    monomer_molar_mass=104.15,
    rho_monomer=0.906,
    gel_A=0.5,
    Tg_monomer=185.0,
    Tg_polymer=373.0,
    rho_polymer=1.05,
    sources_misc={
        "comb": "Moad & Solomon 2006: styryl radicals terminate mostly by combination; 0.9",
        "f": "AIBN as in the acrylate system (Buback et al. 1994); 0.5-0.8 reported in styrene",
        "C_M": "Polymer Handbook: styrene 0.6e-4 at 60 °C; same Ea as kp",
        "C_S": "Polymer Handbook: toluene in styrene 1.25e-5 at 60 °C; same Ea as kp",
        "gel": "free-volume gel effect as for MMA with styrene 185 K / 1e-3, polystyrene 373 K / 4.8e-4 (commonly "
        "quoted); gel_A 0.5 is a guess (styrene's gel effect is weaker than MMA's): calibrate it",
        "solvent": "[S] = (1 - [M]0 * V_M) / V_tol with molar volumes M/rho; constant during the run",
    },
)

#: Kinetic parameter set of every chemistry, by the system key of :data:`polyinv.schema.SYSTEMS`.
PARAMETER_SETS: dict[str, KineticParameters] = {
    "ba": DEFAULT_PARAMETERS,
    "mma": MMA_PARAMETERS,
    "sty": STY_PARAMETERS,
}


def parameters_of(system: str) -> KineticParameters:
    """The literature kinetic parameters of a system key (``ba``, ``mma``, ``sty``)."""
    try:
        return PARAMETER_SETS[system]
    except KeyError:
        raise ValueError(f"unknown system {system!r}; choose one of {', '.join(PARAMETER_SETS)}") from None


def no_backbiting(params: KineticParameters) -> KineticParameters:
    """Parameters with backbiting switched off (no MCRs are formed)."""
    return params.replace(kbb=dataclasses.replace(params.kbb, A=0.0, source="switched off"))


def reference_text(P: KineticParameters) -> dict[str, str]:
    """What each calibration parameter (:data:`polyinv.sim.forward.PARAMETERS`) moves, at these values."""

    def at_ref(c) -> str:
        return f"{c.at(70.0):.4g} {c.unit} at 70 °C (A {c.A:.4g}, Ea {c.Ea:g} kJ/mol)"

    return {
        "kt": f"kt_ss {at_ref(P.kt_ss)}; kt_st, kt_tt scaled alike",
        "f": f"f {P.f_values} at {P.f_temps} °C",
        "kp": f"kp {at_ref(P.kp)}",
        "kbb": f"kbb {at_ref(P.kbb)}",
        "kpt": f"kpt {at_ref(P.kpt)}",
        "C_M": f"C_M {P.C_M:g}",
        "C_S": f"C_S {P.C_S:g}, C_S_mcr {P.C_S_mcr:g}",
        "Ea_kt": f"Ea(kt) {P.kt_ss.Ea:g} kJ/mol",
        "Ea_kp": f"Ea(kp) {P.kp.Ea:g} kJ/mol",
        "Ea_kbb": f"Ea(kbb) {P.kbb.Ea:g} kJ/mol",
        "Ea_kpt": f"Ea(kpt) {P.kpt.Ea:g} kJ/mol",
        "comb": f"combination shares {P.comb_ss:g} (SPR-SPR), {P.comb_st:g} (SPR-MCR), {P.comb_tt:g} (MCR-MCR)",
        "alpha_t": f"alpha_t {P.alpha_t:g} (kt independent of chain length; kt given at nu_ref {P.nu_ref:g})",
        "gel": f"gel_A {P.gel_A:g} (free-volume gel effect)",
        "gpc_mass": f"GPC molar-mass factor {P.gpc_mass:g} (the true masses)",
        "gpc_spread": f"GPC band broadening {P.gpc_spread:g} decade",
    }
