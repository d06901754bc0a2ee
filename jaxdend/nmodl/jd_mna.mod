TITLE jd_mna: Mainen & Sejnowski 1996 sodium current (na.mod semantics)

COMMENT
Written for the jaxdend test suite from the equations of Mainen & Sejnowski 1996 as used in
the widely distributed na.mod (cnexp revision): mirrors jaxdend.channels.MainenNa with the
same parameter names, but the density g_na is in S/cm2 (1 pS/um2 = 1e-4 S/cm2).
  vm = v + vshift
  trap0(v, th, a, q) = a (v - th)/(1 - exp(-(v - th)/q))
  am = trap0(vm, tha, ra, qa)       bm = trap0(-vm, -tha, rb, qa)
  ah = trap0(vm, thi1, rd, qi)      bh = trap0(-vm, -thi2, rg, qi)
  minf = am/(am + bm)   hinf = 1/(1 + exp((vm - thinf)/qinf))
  tau = 1/(tadj (a + b)),   tadj = q10^((celsius - temp_ref)/10)
  ina = tadj g_na m^3 h (v - ena)        (conductance also scaled by tadj, as in na.mod)
The jaxdend attribute g_celsius corresponds to NEURON's celsius here.
The reversal potential is the section's ena (jaxdend attribute e_na).
ENDCOMMENT

NEURON {
    THREADSAFE
    SUFFIX jd_mna
    USEION na READ ena WRITE ina
    RANGE g_na, vshift, tha, qa, ra, rb, thi1, thi2, qi, thinf, qinf, rg, rd, temp_ref, q10
    RANGE minf, hinf, mtau, htau, tadj
}

UNITS {
    (mA) = (milliamp)
    (mV) = (millivolt)
    (S) = (siemens)
}

PARAMETER {
    g_na = 0.1 (S/cm2)
    vshift = -10 (mV)
    tha = -35 (mV)
    qa = 9 (mV)
    ra = 0.182 (/ms)
    rb = 0.124 (/ms)
    thi1 = -50 (mV)
    thi2 = -75 (mV)
    qi = 5 (mV)
    thinf = -65 (mV)
    qinf = 6.2 (mV)
    rg = 0.0091 (/ms)
    rd = 0.024 (/ms)
    temp_ref = 23 (degC)
    q10 = 2.3 (1)
}

ASSIGNED {
    v (mV)
    celsius (degC)
    ena (mV)
    ina (mA/cm2)
    minf (1)
    hinf (1)
    mtau (ms)
    htau (ms)
    tadj (1)
}

STATE { m h }

BREAKPOINT {
    SOLVE states METHOD cnexp
    tadj = q10^((celsius - temp_ref)/10 (degC))
    ina = tadj*g_na*m*m*m*h*(v - ena)
}

INITIAL {
    rates(v + vshift)
    m = minf
    h = hinf
}

DERIVATIVE states {
    rates(v + vshift)
    m' = (minf - m)/mtau
    h' = (hinf - h)/htau
}

UNITSOFF
PROCEDURE rates(vm (mV)) {
    LOCAL a, b
    tadj = q10^((celsius - temp_ref)/10)
    a = trap0(vm, tha, ra, qa)
    b = trap0(-vm, -tha, rb, qa)
    mtau = 1/(tadj*(a + b))
    minf = a/(a + b)
    a = trap0(vm, thi1, rd, qi)
    b = trap0(-vm, -thi2, rg, qi)
    htau = 1/(tadj*(a + b))
    hinf = 1/(1 + exp((vm - thinf)/qinf))
}

FUNCTION trap0(v, th, a, q) {
    if (fabs((v - th)/q) < 1e-6) {
        trap0 = a*q*(1 + (v - th)/q/2)
    } else {
        trap0 = a*(v - th)/(1 - exp(-(v - th)/q))
    }
}
UNITSON
