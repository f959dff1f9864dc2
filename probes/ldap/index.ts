// The ldap kind, declared once: everything vakt knows about it (probes/kit/kind.ts).
import { LOGIN_WORDS } from '../kit/words.js';
import { CONNECTION_VALUES, defineKind, NETWORK_REASONS, type CheckIssue, AUTH_CODE_LABEL, type KindWords, type Language } from '../kit/kind.js';
import { options, ldapUrl, PHASES } from './options.js';

/** The probe account's password expiring (degraded: password_expiring), in each language. */
const PASSWORD_EXPIRING: Readonly<Record<Language, string>> = {
  en: 'Password expiring',
  sv: 'Lösenordet går snart ut',
  da: 'Adgangskoden udløber snart',
  nb: 'Passordet går snart ut',
  fi: 'Salasana vanhenee pian',
};

const withExpiring = (lang: Language): KindWords => ({
  ...LOGIN_WORDS[lang],
  reasons: { ...LOGIN_WORDS[lang].reasons, password_expiring: PASSWORD_EXPIRING[lang] },
});
const WORDS: Readonly<Record<Language, KindWords>> = {
  en: withExpiring('en'),
  sv: withExpiring('sv'),
  da: withExpiring('da'),
  nb: withExpiring('nb'),
  fi: withExpiring('fi'),
};

export default defineKind({
  name: 'ldap',
  summary: "A directory accepts the probe account's bind (LDAP or Active Directory, ldaps:// or StartTLS) and finds entries.",
  target: { schema: ldapUrl, multiple: false },
  options,
  secretOptions: ['password'],
  checkRules: ({ targets, options }) => {
    const ldaps = targets.some((t) => t.secure);
    const issues: CheckIssue[] = [];
    if (ldaps && options.startTls === true)
      issues.push({ path: ['startTls'], message: 'expected startTls only with an ldap:// target (ldaps:// is TLS from the start)' });
    if (!ldaps && options.startTls !== true && options.tls !== undefined)
      issues.push({ path: ['tls'], message: 'expected tls only with an ldaps:// target or startTls: true' });
    return issues;
  },
  phases: PHASES,
  reasons: [...NETWORK_REASONS, 'auth', 'assertion'],
  degradedReasons: ['slow', 'cert_expiring', 'password_expiring'],
  infoLabels: AUTH_CODE_LABEL,
  values: {
    ...CONNECTION_VALUES,
    ldap_search_entries: { help: 'Entries the search of the last run found.' },
    ldap_password_expiry_seconds: {
      metric: 'vakt_ldap_password_expiry_seconds',
      help: "Seconds until the probe account's password expires, as the directory's password policy warned in the last run (only within its warning period).",
    },
    ldap_grace_logins_remaining: {
      metric: 'vakt_ldap_grace_logins_remaining',
      help: "Grace logins left for the probe account's expired password, as the directory's password policy said in the last run.",
    },
  },
  words: WORDS,
  example: `- name: ad-login
  title: Windows login (directory)
  kind: ldap
  target: ldaps://dc1.region.example
  secrets: { probe_password: { env: VAKT_AD_PROBE_PASSWORD } }
  ldap: { bindDn: "CN=vakt-probe,OU=Service,DC=region,DC=example", password: probe_password }`,
  load: () => import('./probe.js').then((m) => m.ldapProbe),
});
