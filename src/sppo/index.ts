// SPPO bookkeeping: preference matrices, win rates, pairs and training rows.
export { sigmoid, validateMatrix, validateScores, matrixFromScores, symmetrize, MATRIX_TOLERANCE } from '../judge/matrix.js';
export { winRates } from './winRates.js';
export { selectPairs, parsePairing, pairingSupportsLoss, argmax, argmin, PAIRINGS, type Pair, type Pairing } from './pairs.js';
export { trainRows, buildTrainRows, type TrainTableRow, type JudgedPrompt } from './trainTable.js';
export { conversation, type ChatMessage } from '../data/messages.js';
