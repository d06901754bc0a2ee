TITLE jd_ih: hyperpolarisation-activated cation current Ih (Kole et al. 2006 kinetics)

COMMENT
Written for the jaxdend test suite from the equations of Kole, Hallermann & Stuart 2006
(J Neurosci 26:1677) in the form used by Hay et al. 2011 (PLoS Comput Biol 7:e1002107):
mirrors jaxdend.channels.Ih with the same parameter names (g_h in S/cm2, e_h in mV).
  alpha = 6.43e-3 (v + 154.9)/(exp((v + 154.9)/11.9) - 1)      (1/ms)
  beta  = 0.193 exp(v/33.1)                                      (1/ms)
  minf = alpha/(alpha + beta)    mtau = 1/(alpha + beta)        (no temperature factor)
  ih = g_h m (v - e_h)           (non-specific cation current)
The 0/0 point of alpha at v = -154.9 mV takes the first-order Taylor branch below
|x/y| = 1e-6, as jaxdend's vtrap does.
ENDCOMMENT

NEURON {
    THREADSAFE
    SUFFIX jd_ih
    NONSPECIFIC_CURRENT ih
    RANGE g_h, e_h
    RANGE minf, mtau
}

UNITS {
    (mA) = (milliamp)
    (mV) = (millivolt)
    (S) = (siemens)
}

PARAMETER {
    g_h = 1e-4 (S/cm2)
    e_h = -45 (mV)
}

ASSIGNED {
    v (mV)
    ih (mA/cm2)
    minf (1)
    mtau (ms)
}

STATE { m }

BREAKPOINT {
    SOLVE states METHOD cnexp
    ih = g_h*m*(v - e_h)
}

INITIAL {
    rates(v)
    m = minf
}

DERIVATIVE states {
    rates(v)
    m' = (minf - m)/mtau
}

UNITSOFF
PROCEDURE rates(v (mV)) {
    LOCAL a, b
    a = 6.43e-3*vtrap(v + 154.9, 11.9)
    b = 0.193*exp(v/33.1)
    minf = a/(a + b)
    mtau = 1/(a + b)
}

FUNCTION vtrap(x, y) {
    if (fabs(x/y) < 1e-6) {
        vtrap = y*(1 - x/y/2)
    } else {
        vtrap = x/(exp(x/y) - 1)
    }
}
UNITSON
