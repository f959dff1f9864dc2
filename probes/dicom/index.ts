// The dicom kind, declared once: everything vakt knows about it (probes/kit/kind.ts).
import { endpoint } from '../kit/target.js';
import { CONNECTION_VALUES, defineKind, NETWORK_REASONS } from '../kit/kind.js';
import { options, PHASES } from './options.js';

export default defineKind({
  name: 'dicom',
  summary:
    'A PACS (or any DICOM node) takes an association from our AE title and answers a C-ECHO (Verification), over DICOM TLS if asked; rejections, aborts and statuses named.',
  target: { schema: endpoint, multiple: false },
  options,
  secretOptions: [],
  phases: PHASES,
  reasons: [
    ...NETWORK_REASONS,
    'dicom_rejected_called_ae',
    'dicom_rejected_calling_ae',
    'dicom_rejected',
    'dicom_busy',
    'dicom_abort',
    'dicom_no_context',
    'dicom_status',
  ],
  degradedReasons: ['cert_expiring'],
  values: {
    ...CONNECTION_VALUES,
    dicom_peer_max_pdu_bytes: { help: "The PACS's Maximum Length (the largest P-DATA-TF it receives; 0: no limit), last run." },
  },
  // Imaging words: a PACS that refuses associations is, to the people around it, one that does not take images.
  words: {
    en: {
      notAnswering: 'not accepting images',
      states: { degraded: 'Slow to accept images', down: 'Not accepting images' },
      reasons: { dicom_busy: 'Too busy to accept images' },
    },
    sv: {
      notAnswering: 'tar inte emot bilder',
      states: { degraded: 'Tar emot bilder långsamt', down: 'Tar inte emot bilder' },
      reasons: { dicom_busy: 'Överbelastad, tar inte emot bilder' },
    },
    da: {
      notAnswering: 'modtager ikke billeder',
      states: { degraded: 'Modtager billeder langsomt', down: 'Modtager ikke billeder' },
      reasons: { dicom_busy: 'Overbelastet, modtager ikke billeder' },
    },
    nb: {
      notAnswering: 'tar ikke imot bilder',
      states: { degraded: 'Tar imot bilder sakte', down: 'Tar ikke imot bilder' },
      reasons: { dicom_busy: 'Overbelastet, tar ikke imot bilder' },
    },
    fi: {
      notAnswering: 'ei ota vastaan kuvia',
      states: { degraded: 'Ottaa kuvia vastaan hitaasti', down: 'Ei ota vastaan kuvia' },
      reasons: { dicom_busy: 'Ruuhkautunut, ei ota vastaan kuvia' },
    },
  },
  example: `- name: pacs-echo
  title: PACS (image archive)
  kind: dicom
  target: pacs.region.example:104
  dicom: { callingAeTitle: VAKT, calledAeTitle: PACS_ARCHIVE }`,
  load: () => import('./probe.js').then((m) => m.dicomProbe),
});
